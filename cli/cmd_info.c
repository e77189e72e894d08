/* cmd_info.c — `gtr info -m MODEL_DIR`: load a model and describe it (architecture, parameter
 * count, storage dtype, files, memory). Loading fully is the point: it validates every file. */
#include "cli.h"

#include <getopt.h>
#include <string.h>
#include <sys/resource.h>

static const char *CMD = "info";

static void usage(FILE *out)
{
    fprintf(out,
        "usage: gtr info -m MODEL_DIR [--dtype D] [-t N]\n"
        "\n"
        "Load a GTR model directory (sentence-transformers layout: modules.json, config.json,\n"
        "model.safetensors or pytorch_model.bin, spiece.model, 1_Pooling/, 2_Dense/), checking\n"
        "every file and tensor, and describe it: architecture, shape, parameter count, storage\n"
        "dtype and files, compute precision, maximum length, fingerprint, load time and memory\n"
        "(and the memory a load needs in each dtype, estimated before loading).\n"
        "\n"
        "  -m, --model DIR   the model directory\n"
        "      --dtype D     load as f32, bf16 or int8 (default: the dtype the directory\n"
        "                    stores: a `gtr quantize` copy's bf16 / int8, BF16 Linear\n"
        "                    weights as bf16, else f32)\n"
        "  -t, --threads N   threads used to convert the weights (default: all cores)\n"
        "  -h, --help        this help\n");
}

int cmd_info(int argc, char **argv)
{
    enum { OPT_THREADS = 256, OPT_DTYPE };
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"threads", required_argument, 0, 't'},
                                             {"dtype", required_argument, 0, OPT_DTYPE},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *model = NULL, *dt = NULL;
    long long threads = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case OPT_DTYPE: dt = optarg; break;
        case 't':
            if (!cli_parse_int(CMD, "--threads", optarg, 1, 1024, &threads)) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) return cli_errorf(CMD, 2, "unexpected argument '%s' (see --help)", argv[optind]);
    if (!model) return cli_errorf(CMD, 2, "-m MODEL_DIR is required (see --help)");
    gtr_model_options o;
    if (!cli_model_options(CMD, &o)) return 2;
    o.n_threads = (int)threads;
    o.dtype = GTR_DTYPE_AUTO; /* a copy is described as it is used: mapped in its own dtype */
    if (dt && !cli_parse_dtype(CMD, dt, &o.dtype)) return 2;
    gtr_error err;
    double t0 = cli_now();
    gtr_model *m = gtr_model_load(model, &o, &err);
    if (!m) return cli_fail(CMD, &err);
    double el = cli_now() - t0;
    struct rusage ru;
    double peak = getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
    printf("model: %s\n%s\nloaded in %.2f s; peak memory %.1f MiB for %.1f MiB of weights\n", model,
           gtr_model_describe(m), el, peak, (double)gtr_model_weight_bytes(m) / (1 << 20));
    gtr_model_free(m);
    return 0;
}
