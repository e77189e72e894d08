/* cmd_quantize.c — `gtr quantize -m IN_DIR -o OUT_DIR --dtype bf16|int8`: a copy of a model
 * directory whose encoder weights are stored in that precision (gtr_model_quantize). */
#include "cli.h"
#include "core/core.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *CMD = "quantize";

static void usage(FILE *out)
{
    fprintf(out,
        "usage: gtr quantize -m IN_DIR -o OUT_DIR --dtype bf16|int8 [-t N] [-q]\n"
        "\n"
        "Write a copy of a GTR model directory whose encoder weights (model.safetensors) are\n"
        "stored in the compute precision, so that loading it is a plain copy of a file half\n"
        "(bf16) or a quarter (int8) of the float32 size. Every gtr command loads OUT_DIR; with\n"
        "the same --dtype it gives bit for bit the vectors IN_DIR gives with that --dtype\n"
        "(use --dtype bf16 / int8 with it: with f32 the weights are dequantised to float32).\n"
        "\n"
        "  bf16   the embedding and every Linear weight as BF16 (round to nearest even); layer\n"
        "         norms and the position bias stay F32. Standard safetensors: Python's\n"
        "         transformers / sentence-transformers load it too.\n"
        "  int8   every Linear weight as I8 codes plus an F32 '<name>_scale' [rows] tensor\n"
        "         (symmetric, one scale per output channel; the embedding one per token row);\n"
        "         __metadata__ {\"gtr_quantization\": \"int8-per-channel-v1\"}. gtr only.\n"
        "\n"
        "The rest of the layout is copied: configuration files, spiece.model and the other\n"
        "modules (1_Pooling, 2_Dense with its weights as they are). Weights in other formats\n"
        "(pytorch_model.bin, ...) are left out. The copy keeps the source's fingerprint (an\n"
        "index built with either model works with the other). OUT_DIR must not exist; it is\n"
        "written as OUT_DIR.tmp (a leftover one is replaced) and renamed when complete.\n"
        "\n"
        "  -m, --model DIR     the model directory to quantise\n"
        "  -o, --output DIR    the new directory\n"
        "      --dtype D       bf16 or int8\n"
        "  -t, --threads N     threads (default: all cores)\n"
        "  -q, --quiet         no summary on standard error\n"
        "  -h, --help          this help\n");
}

/* Bytes of the regular files directly in dir/name (model.safetensors and the like). */
static double file_mib(const char *dir, const char *name)
{
    char *p = gtr_path_join(dir, name);
    struct stat sb;
    double v = p && stat(p, &sb) == 0 ? (double)sb.st_size / (1 << 20) : 0.0;
    free(p);
    return v;
}

int cmd_quantize(int argc, char **argv)
{
    enum { OPT_DTYPE = 256 };
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"output", required_argument, 0, 'o'},
                                             {"dtype", required_argument, 0, OPT_DTYPE},
                                             {"threads", required_argument, 0, 't'},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *in = NULL, *out = NULL, *dt = NULL;
    long long threads = 0;
    bool quiet = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:o:t:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': in = optarg; break;
        case 'o': out = optarg; break;
        case OPT_DTYPE: dt = optarg; break;
        case 't':
            if (!cli_parse_int(CMD, "--threads", optarg, 1, 1024, &threads)) return 2;
            break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) return cli_errorf(CMD, 2, "unexpected argument '%s' (see --help)", argv[optind]);
    if (!in) return cli_errorf(CMD, 2, "-m IN_DIR is required (see --help)");
    if (!out) return cli_errorf(CMD, 2, "-o OUT_DIR is required (see --help)");
    if (!dt) return cli_errorf(CMD, 2, "--dtype bf16|int8 is required (see --help)");
    gtr_compute_dtype dtype;
    if (!strcmp(dt, "bf16")) dtype = GTR_DTYPE_BF16;
    else if (!strcmp(dt, "int8")) dtype = GTR_DTYPE_INT8;
    else return cli_errorf(CMD, 2, "--dtype must be bf16 or int8, got '%s'", dt);
    gtr_error err;
    double t0 = gtr_now_seconds();
    if (gtr_model_quantize(in, out, dtype, (int)threads, &err)) return cli_fail(CMD, &err);
    if (!quiet)
        fprintf(stderr, "gtr quantize: %s -> %s (%s): model.safetensors %.1f MiB in %.2f s; load it with --dtype %s\n",
                in, out, dt, file_mib(out, "model.safetensors"), gtr_now_seconds() - t0, dt);
    return 0;
}
