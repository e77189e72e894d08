/* trainer.c — the public gtr_trainer_* API (in progress) */
#include "train/train_internal.h"

#include <string.h>

gtr_train_options gtr_train_default_options(void)
{
    gtr_train_options o;
    memset(&o, 0, sizeof o);
    o.optimizer = GTR_OPTIM_ADAFACTOR;
    o.lr = 1e-3;
    o.schedule = GTR_LR_LINEAR;
    o.total_steps = 1;
    o.batch_size = 32;
    o.n_negatives = 1;
    o.query_max_len = 64;
    o.passage_max_len = 256;
    o.tau = 0.01;
    o.weight_decay = 0.01;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    o.decay_rate = -0.8;
    o.clip_threshold = 1.0;
    o.eps1 = 1e-30;
    return o;
}
