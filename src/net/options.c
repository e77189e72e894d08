/* options.c — download options: defaults, and the fill-in of fields a caller left unset. */
#include "net.h"

#include <string.h>

gtr_download_options gtr_download_default_options(void)
{
    gtr_download_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.max_retries = 5;
    o.retry_delay_ms = 1000;
    o.connect_timeout_s = 30;
    o.stall_timeout_s = 60;
    return o;
}

gtr_status net_resolve_options(const gtr_download_options *opts, gtr_download_options *out,
                               gtr_error *err)
{
    gtr_download_options d = gtr_download_default_options(), o = d;
    if (gtr_options_take(&o, sizeof o, opts, "download", err)) return GTR_ERR_INVALID_ARG;
    if (o.max_retries < 0) o.max_retries = d.max_retries;
    if (o.retry_delay_ms < 0) o.retry_delay_ms = d.retry_delay_ms;
    if (o.connect_timeout_s <= 0) o.connect_timeout_s = d.connect_timeout_s;
    if (o.stall_timeout_s <= 0) o.stall_timeout_s = d.stall_timeout_s;
    *out = o;
    return GTR_OK;
}
