/* fuzz_http.c — libFuzzer target for the server's HTTP/1.1 request framing (http_parse.c):
 * the head parser on the input, then, when the head is complete and chunked, the chunked
 * decoder over the rest fed in pieces whose sizes come from the input's first byte. Every
 * outcome must be a clean result or a status with a message; decoded data never exceeds what
 * was fed. */
#include "server/server.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t step = (size_t)(data[0] % 17) + 1;
    data++;
    size--;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    gs_http_limits lim = {512, 2048};
    gs_http_head h;
    int r = gs_http_parse_head(buf, size, &lim, &h);
    if (r < 0 && (!h.status || !h.message || !h.code)) abort();
    if (r == 1) {
        if (h.head_len > size || !h.method || !h.path) abort();
        if (h.chunked) {
            gs_chunked c;
            gs_chunked_init(&c);
            char *p = buf + h.head_len;
            size_t left = size - h.head_len, pending = 0;
            /* feed like the connection layer: unused bytes stay at the front */
            char *win = malloc(left + 1);
            if (win) {
                size_t fed = 0;
                for (;;) {
                    size_t n = left - fed < step ? left - fed : step;
                    memcpy(win + pending, p + fed, n);
                    fed += n;
                    pending += n;
                    size_t used, out;
                    const char *why;
                    int cr = gs_chunked_feed(&c, win, pending, &used, &out, &why);
                    if (cr < 0) {
                        if (!why) abort();
                        break;
                    }
                    if (used > pending || out > used) abort();
                    memmove(win, win + used, pending - used);
                    pending -= used;
                    if (cr != 0 || fed == left) break;
                }
                free(win);
            }
        }
    }
    free(buf);
    return 0;
}
