/* cmd_quantize.c — `gtr quantize -m IN_DIR -o OUT_DIR --dtype bf16|int8`: a copy of a model
 * directory whose encoder weights are stored in that precision (gtr_model_quantize). */
#include "cli.h"

#include <dirent.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *CMD = "quantize";

static void usage(FILE *out)
{
    fprintf(out,
        "usage: gtr quantize -m IN_DIR -o OUT_DIR --dtype bf16|int8 [--portable] [-t N] [-q]\n"
        "\n"
        "Write a copy of a GTR model directory whose encoder weights (model.safetensors) are\n"
        "stored in the compute precision and already packed in the layout the CPU kernels use,\n"
        "so that loading it with that --dtype costs no more than reading the file: it is\n"
        "memory-mapped and used in place (no conversion, no private copy; processes loading\n"
        "the same copy share its pages). With the same --dtype it gives bit for bit the vectors\n"
        "IN_DIR gives with that --dtype (use --dtype bf16 / int8 with it: with f32 the weights\n"
        "are widened / dequantised to float32 at load).\n"
        "\n"
        "  bf16   the embedding and every Linear weight as BF16 (round to nearest even); layer\n"
        "         norms and the position bias stay F32. gtr only, unless --portable.\n"
        "  int8   every Linear weight as I8 codes with F32 scales (symmetric, one per output\n"
        "         channel; the embedding one per token row); __metadata__\n"
        "         {\"gtr_quantization\": \"int8-per-channel-v1\"}. gtr only.\n"
        "  Packed files say __metadata__ {\"gtr_layout\": \"gtr-panels-v1\"}: each layer's q/k/v,\n"
        "  o, wi and wo as encoder.block.<i>.packed.<qkv|o|wi|wo> [panels, k groups, rows, k].\n"
        "\n"
        "      --portable  (bf16 only) transformers' layout instead: standard tensor names,\n"
        "                  row-major, which Python's transformers / sentence-transformers\n"
        "                  load too; gtr converts it at load instead of using it in place.\n"
        "\n"
        "The rest of the layout is copied: configuration files, spiece.model and the other\n"
        "modules (1_Pooling, 2_Dense with its weights as they are). Weights in other formats\n"
        "(pytorch_model.bin, ...) are left out. The copy keeps the source's fingerprint (an\n"
        "index built with either model works with the other). OUT_DIR must not exist; it is\n"
        "written as OUT_DIR.tmp (a leftover one is replaced) and renamed when complete.\n"
        "Every tensor's bytes get a checksum (__metadata__ \"gtr_checksum\": \"crc32c-tree64k-v1\",\n"
        "\"gtr_checksums\"), verified whenever gtr loads the copy: a damaged tensor is refused\n"
        "naming the file and the tensor (GTR_NO_VERIFY=1 skips the check).\n"
        "Above 5 GB of weights (transformers' default max_shard_size; GTR_MAX_SHARD_BYTES=N\n"
        "sets another limit in bytes) they are split as transformers saves big models:\n"
        "model-0000k-of-0000K.safetensors + model.safetensors.index.json (an xxl bf16 copy:\n"
        "two files), loaded like the single file.\n"
        "\n"
        "  -m, --model DIR     the model directory to quantise\n"
        "  -o, --output DIR    the new directory\n"
        "      --dtype D       bf16 or int8\n"
        "  -t, --threads N     threads (default: all cores)\n"
        "  -q, --quiet         no summary on standard error\n"
        "  -h, --help          this help\n");
}

/* Bytes of the encoder's weight files directly in dir (model.safetensors, or its shards
 * model-0000k-of-0000K.safetensors) and how many there are. */
static double weights_mib(const char *dir, int *files)
{
    double total = 0;
    *files = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "model", 5) || n < 12 || strcmp(e->d_name + n - 12, ".safetensors")) continue;
        char *p = malloc(strlen(dir) + n + 2);
        struct stat sb;
        if (p) sprintf(p, "%s/%s", dir, e->d_name);
        if (p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
            total += (double)sb.st_size / (1 << 20);
            ++*files;
        }
        free(p);
    }
    if (d) closedir(d);
    return total;
}

int cmd_quantize(int argc, char **argv)
{
    enum { OPT_DTYPE = 256, OPT_PORTABLE };
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"output", required_argument, 0, 'o'},
                                             {"dtype", required_argument, 0, OPT_DTYPE},
                                             {"portable", no_argument, 0, OPT_PORTABLE},
                                             {"threads", required_argument, 0, 't'},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *in = NULL, *out = NULL, *dt = NULL;
    long long threads = 0;
    bool quiet = false, portable = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:o:t:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': in = optarg; break;
        case 'o': out = optarg; break;
        case OPT_DTYPE: dt = optarg; break;
        case OPT_PORTABLE: portable = true; break;
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
    if (portable && dtype != GTR_DTYPE_BF16)
        return cli_errorf(CMD, 2, "--portable writes bf16 only (transformers has no int8 dtype)");
    gtr_error err;
    double t0 = cli_now();
    if (portable ? gtr_model_quantize_portable(in, out, (int)threads, &err)
                 : gtr_model_quantize(in, out, dtype, (int)threads, &err))
        return cli_fail(CMD, &err);
    if (!quiet) {
        int files;
        double mib = weights_mib(out, &files);
        char what[64] = "model.safetensors";
        if (files > 1) snprintf(what, sizeof what, "%d shards (model.safetensors.index.json)", files);
        fprintf(stderr, "gtr quantize: %s -> %s (%s): %s %.1f MiB in %.2f s; load it with --dtype %s\n", in, out,
                dt, what, mib, cli_now() - t0, dt);
    }
    return 0;
}
