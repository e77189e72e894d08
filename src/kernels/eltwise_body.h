/* eltwise_body.h — the row-wise element-wise kernels (RMS norm, softmax with an optional bias
 * row, gated GELU, dot) and their expf, written once over a vector of W floats. Included by
 * eltwise_<isa>.c after it maps these operations onto its registers:
 *
 *   V, VM (a lane mask), W                    ELT(name): the function's exported name
 *   v_zero() v_set1(f) v_load(p)              v_tail(r): lanes [0, min(r, W))
 *   v_loadm(p, m, fill) v_storem(p, m, v)     masked load (other lanes = fill) / store
 *   v_add v_sub v_mul v_div v_fma(a, b, c)    v_max(a, b): b where either is NaN
 *   v_hsum(v) v_hmax(v)                       horizontal sum / max of the lanes
 *   VC v_gt(a, b) v_lt(a, b) v_sel(c, t, f)   compare masks, and t where c else f
 *   v_round(x)  v_pow2i(n)                    round to nearest even; 2^n for integral n
 *
 * Each kernel sums in the same order on every ISA up to the vector width (per-lane chains,
 * then the ISA's horizontal reduction), so an ISA's results stay what they were when each
 * had its own copy; across ISAs they agree within the ~1e-6 that kernels.h promises. */

/* e^x: x = n·ln2 + r (two-constant Cody-Waite), e^r by a degree-6 polynomial, 2^n through
 * the exponent bits. Below ln(FLT_MIN) the result is 0 (-inf -> 0), above 88.376 +inf; NaN
 * propagates. */
INLINE V v_exp(V x)
{
    VC over = v_gt(x, v_set1(88.3762626647949f)), under = v_lt(x, v_set1(-87.3365447504f));
    V fx = v_round(v_mul(x, v_set1(1.44269504088896341f)));
    V r = v_fnma(fx, v_set1(0.693359375f), x);
    r = v_fnma(fx, v_set1(-2.12194440e-4f), r);
    V p = v_set1(1.9875691500E-4f);
    p = v_fma(p, r, v_set1(1.3981999507E-3f));
    p = v_fma(p, r, v_set1(8.3334519073E-3f));
    p = v_fma(p, r, v_set1(4.1665795894E-2f));
    p = v_fma(p, r, v_set1(1.6666665459E-1f));
    p = v_fma(p, r, v_set1(5.0000001201E-1f));
    p = v_fma(p, v_mul(r, r), v_add(r, v_set1(1.0f)));
    /* 2^fx for fx in [-126, 127] (clamped so the integer never wraps; the masks fix the ends) */
    V fxc = v_min(v_max(fx, v_set1(-126.0f)), v_set1(127.0f));
    V y = v_mul(p, v_pow2i(fxc));
    y = v_sel(over, v_set1(INFINITY), y);
    return v_sel(under, v_zero(), y);
}

void ELT(rmsnorm)(const float *x, const float *w, float eps, size_t n, float *y)
{
    V s0 = v_zero(), s1 = v_zero();
    size_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        V a = v_load(x + i), b = v_load(x + i + W);
        s0 = v_fma(a, a, s0);
        s1 = v_fma(b, b, s1);
    }
    for (; i < n; i += W) {
        V a = v_loadm(x + i, v_tail(n - i), 0.0f);
        s0 = v_fma(a, a, s0);
    }
    float ss = v_hsum(v_add(s0, s1));
    V r = v_set1(1.0f / sqrtf(ss / (float)n + eps));
    for (i = 0; i < n; i += W) {
        VM m = v_tail(n - i);
        v_storem(y + i, m, v_mul(v_mul(v_loadm(x + i, m, 0.0f), r), v_loadm(w + i, m, 0.0f)));
    }
}

void ELT(add_softmax)(float *x, const float *bias, size_t n)
{
    V mx = v_set1(-INFINITY);
    for (size_t i = 0; i < n; i += W) {
        VM m = v_tail(n - i);
        V v = v_loadm(x + i, m, -INFINITY);
        if (bias) {
            v = v_add(v, v_loadm(bias + i, m, 0.0f));
            v_storem(x + i, m, v);
        }
        mx = v_max(v, mx); /* NaN lanes keep the old maximum */
    }
    float mxs = v_hmax(mx);
    if (mxs == -INFINITY) {
        gtr_softmax_masked_row(x, n);
        return;
    }
    V vmx = v_set1(mxs), s = v_zero();
    for (size_t i = 0; i < n; i += W) {
        VM m = v_tail(n - i);
        V e = v_exp(v_sub(v_loadm(x + i, m, -INFINITY), vmx)); /* missing lanes: e^-inf = 0 */
        s = v_add(s, e);
        v_storem(x + i, m, e);
    }
    V inv = v_set1(1.0f / v_hsum(s));
    for (size_t i = 0; i < n; i += W) {
        VM m = v_tail(n - i);
        v_storem(x + i, m, v_mul(v_loadm(x + i, m, 0.0f), inv));
    }
}

void ELT(softmax)(float *x, size_t n) { ELT(add_softmax)(x, NULL, n); }

void ELT(gelu_mul)(float *x, const float *g, size_t n)
{
    const V c = v_set1(0.7978845608028654f), c3 = v_set1(0.044715f), m2 = v_set1(-2.0f),
            one = v_set1(1.0f);
    for (size_t i = 0; i < n; i += W) {
        VM m = v_tail(n - i);
        V v = v_loadm(x + i, m, 0.0f);
        /* u = c·(v + 0.044715·v³), as the portable code rounds it */
        V u = v_mul(c, v_add(v, v_mul(v_mul(v_mul(c3, v), v), v)));
        V d = v_add(one, v_exp(v_mul(m2, u)));
        v_storem(x + i, m, v_mul(v_div(v, d), v_loadm(g + i, m, 0.0f)));
    }
}

float ELT(dot)(const float *a, const float *b, size_t n)
{
    V s0 = v_zero(), s1 = v_zero(), s2 = v_zero(), s3 = v_zero();
    size_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        s0 = v_fma(v_load(a + i), v_load(b + i), s0);
        s1 = v_fma(v_load(a + i + W), v_load(b + i + W), s1);
        s2 = v_fma(v_load(a + i + 2 * W), v_load(b + i + 2 * W), s2);
        s3 = v_fma(v_load(a + i + 3 * W), v_load(b + i + 3 * W), s3);
    }
    for (; i < n; i += W) {
        VM m = v_tail(n - i);
        s0 = v_fma(v_loadm(a + i, m, 0.0f), v_loadm(b + i, m, 0.0f), s0);
    }
    return v_hsum(v_add(v_add(s0, s1), v_add(s2, s3)));
}
