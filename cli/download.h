/* download.h — what `gtr pull` and `gtr pull-dataset` share: progress and messages on stderr
 * for the library's download events, and the default destinations. */
#ifndef GTR_CLI_DOWNLOAD_H
#define GTR_CLI_DOWNLOAD_H

#include "cli.h"

typedef struct dl_ui {
    const char *cmd;
    bool quiet;
    cli_progress prog;
    char label[300];
    double start;
    uint64_t resumed_at;
} dl_ui;

/* Point o's progress and event callbacks at ui. */
void dl_ui_attach(dl_ui *ui, const char *cmd, bool quiet, gtr_download_options *o);
/* "$GTR_HOME/<sub>" when GTR_HOME is set, else "<sub>"; with "/<leaf>" appended when leaf is
 * given. malloc'd (NULL on OOM). */
char *dl_default_dir(const char *sub, const char *leaf);
/* Parse --retries. */
bool dl_parse_retries(const char *cmd, const char *s, int *out);

#endif
