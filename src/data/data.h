/*
 * data.h — reading and writing the files that flow between stages: NumPy .npy/.npz arrays
 * and text inputs (plain lines, JSON lines of strings, BEIR corpus/query objects).
 */
#ifndef GTR_DATA_H
#define GTR_DATA_H

#include "core/core.h"

#include <jansson.h>

/* ---- arrays (.npy / .npz) ---------------------------------------------- */

typedef enum gtr_dtype_id {
    GTR_DT_F32, GTR_DT_F64, GTR_DT_F16, GTR_DT_BF16,
    GTR_DT_I8, GTR_DT_U8, GTR_DT_I16, GTR_DT_I32, GTR_DT_I64, GTR_DT_BOOL
} gtr_dtype_id;
size_t gtr_dtype_size(gtr_dtype_id dt);

#define GTR_MAX_DIMS 8
typedef struct gtr_array {
    gtr_dtype_id dtype;
    int ndim;
    size_t shape[GTR_MAX_DIMS];
    size_t count;  /* product of shape */
    void *data;    /* malloc'd, native little-endian, C order */
} gtr_array;
void gtr_array_free(gtr_array *a);
/* Copy out as float64 / float32 (any float or int dtype); malloc'd, NULL on OOM. */
double *gtr_array_to_f64(const gtr_array *a, gtr_error *err);
float *gtr_array_to_f32(const gtr_array *a, gtr_error *err);

/* Parse an in-memory .npy (version 1-3, little-endian, C order). what names it in errors. */
gtr_status gtr_npy_parse(const void *buf, size_t len, const char *what, gtr_array *out,
                         gtr_error *err);
gtr_status gtr_npy_load(const char *path, gtr_array *out, gtr_error *err);
/* Write a 2-D float32 array atomically. */
gtr_status gtr_npy_save_f32(const char *path, const float *data, size_t rows, size_t cols,
                            gtr_error *err);
/* gtr_npy_header_f32 (the header of a 2-D float32 array) is public: gtr.h. */

typedef struct gtr_npz gtr_npz;
gtr_npz *gtr_npz_open(const char *path, gtr_error *err);
void gtr_npz_close(gtr_npz *z);
/* name without the ".npy" suffix, e.g. "layer00.out". */
gtr_status gtr_npz_get(gtr_npz *z, const char *name, gtr_array *out, gtr_error *err);
bool gtr_npz_has(gtr_npz *z, const char *name);

/* ---- JSON helpers (jansson) -------------------------------------------- */

/* Load a JSON file (small config files); error names the file, line and column. */
json_t *gtr_json_load_file(const char *path, gtr_error *err);
/* Write j as a config file: indented by 2, a final newline, atomically. */
gtr_status gtr_json_write_file(const char *path, const json_t *j, gtr_error *err);
/* Typed field getters with clear errors ("<what>: field 'x' must be an integer"). */
gtr_status gtr_json_get_int(const json_t *obj, const char *key, bool required, long long def,
                            long long *out, const char *what, gtr_error *err);
gtr_status gtr_json_get_real(const json_t *obj, const char *key, bool required, double def,
                             double *out, const char *what, gtr_error *err);
gtr_status gtr_json_get_bool(const json_t *obj, const char *key, bool required, bool def,
                             bool *out, const char *what, gtr_error *err);
/* Returned string is owned by obj. */
gtr_status gtr_json_get_str(const json_t *obj, const char *key, bool required, const char *def,
                            const char **out, const char *what, gtr_error *err);

/* ---- text inputs ------------------------------------------------------- */

/* The text reader is public (gtr.h: gtr_text_format, gtr_text_record, gtr_text_reader_open,
 * _read, _close); the library reads with the same reader through these. */
typedef gtr_text_record gtr_record;
/* gtr_text_reader_read with a bool. */
gtr_status gtr_text_reader_next(gtr_text_reader *r, gtr_record *rec, bool *eof, gtr_error *err);
/* The JSON object of the last line read (owned by the reader, valid until the next read);
 * NULL when it was not an object. */
json_t *gtr_text_reader_object(const gtr_text_reader *r);
/* Byte offset of the next line (for resumable jobs) and seeking back to one. */
uint64_t gtr_text_reader_offset(const gtr_text_reader *r);
gtr_status gtr_text_reader_seek(gtr_text_reader *r, uint64_t offset, size_t line, gtr_error *err);

/* gtr_text_record_passage into buf (reset first). */
gtr_status gtr_record_passage(const gtr_record *rec, gtr_buf *buf, gtr_error *err);
/* Python str.strip() on UTF-8: trims Unicode White_Space characters at both ends. */
void gtr_py_strip(const char *s, size_t len, size_t *start, size_t *out_len);

#endif /* GTR_DATA_H */
