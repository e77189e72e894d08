/* cmd_version.c — `gtr version`: library version and the kernels this CPU gets. */
#include "cli.h"

#include <string.h>

int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: gtr version\n\nPrints the gtr version, the CPU kernels in use and the core count.\n");
        return 0;
    }
    printf("gtr %s\ncpu: %s\ncores: %d\n", gtr_version(), gtr_cpu_features(), gtr_cpu_cores());
    return 0;
}
