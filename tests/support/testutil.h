/*
 * testutil.h — shared helpers for the C tests (cmocka). Reference data lives in ../shared
 * (override with GTR_SHARED); tests read it, never copies of it.
 */
#ifndef GTR_TESTUTIL_H
#define GTR_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/core.h"
#include "data/data.h"

/* TU_SANITIZED: 1 in the AddressSanitizer build, where the GEMM kernels run ~50x slower, so
 * the heaviest parity tests check fewer or shorter texts there (every code path still runs). */
#if defined(__SANITIZE_ADDRESS__)
#define TU_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_SANITIZED 1
#endif
#endif
#ifndef TU_SANITIZED
#define TU_SANITIZED 0
#endif

/* Path of a file under the shared reference folder; returns a malloc'd string the test
 * frees (or leaks harmlessly? no: ASan checks leaks, so free it). */
char *tu_shared(const char *rel);
/* Temporary directory unique to this test process (created on first call, removed at exit). */
const char *tu_tmpdir(void);
/* Path inside tu_tmpdir(); malloc'd. */
char *tu_tmp(const char *name);
/* Fail the test with the library's message when st != GTR_OK. */
#define TU_OK(st, err)                                                                      \
    do {                                                                                    \
        gtr_status tu_st_ = (st);                                                           \
        if (tu_st_ != GTR_OK) fail_msg("%s: %s", gtr_status_str(tu_st_), (err)->message);   \
    } while (0)

/* Read every line of a JSONL file of JSON values; returns count, values in *out (decref each
 * and free the array with tu_json_lines_free). */
size_t tu_json_lines(const char *path, json_t ***out);
void tu_json_lines_free(json_t **v, size_t n);

/* Max |a-b| over n floats/doubles. */
double tu_max_abs_diff_f32_f64(const float *a, const double *b, size_t n);
/* Write a file with the given bytes (test fixtures). */
void tu_write(const char *path, const void *data, size_t len);
/* Run a shell command, return its exit status (-1 if it could not run). */
int tu_system(const char *fmt, ...) GTR_PRINTF(1, 2);

struct gtr_wmat;
/* Two packed weight matrices are the same: layout, size, values, and for INT8 the row scales
 * and column sums (the comparison every packing path is held to). */
void tu_assert_wmat_equal(const struct gtr_wmat *a, const struct gtr_wmat *b);

#endif
