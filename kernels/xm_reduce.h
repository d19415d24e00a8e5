/* Aggregation and on-device reduction (METHODOLOGY.md sections 2-4), in the
 * common subset of C99 and OpenCL C, double precision. One call = one work
 * item: the kernels and the cpu backend call the same functions.
 *
 * Loss buffer of a block: see xm_layout (both backends keep it
 * account-row-major: each (account, component) row's scenarios contiguous);
 * component c = 0 is the whole account, c = 1 + g silo g. */
#ifndef XM_REDUCE_H
#define XM_REDUCE_H

#include "xm_portable.h"

/* Layout of a block's loss buffer, chosen by each backend (xm_layout): the
 * loss of account a, component c (0 the whole account, 1 + g silo g), scenario
 * s is at L[a * ca + c * cs + s * ss]. */
typedef struct xm_layout {
  xm_i64 ca, cs, ss;
} xm_layout;

#include "xm_aggregate.h"

/* C built with OpenMP by gcc (the cpu backend): reductions over a row as
 * vector loops; elsewhere the plain loops (clang vectorises what it can
 * itself, and warns of a requested vector loop it could not make). */
#if defined(_OPENMP) && !defined(__OPENCL_VERSION__) && !defined(__clang__)
#define XM__PRAGMA(x) _Pragma(#x)
#define XM__SIMD_REDUCE(op, v) XM__PRAGMA(omp simd reduction(op : v))
#else
#define XM__SIMD_REDUCE(op, v)
#endif

/* Monotone unsigned key of a double (larger double, larger key); -0 is +0. */
XM_INLINE xm_u64 xm_key(double x) {
  xm_u64 u = XM_BITS_OF_DOUBLE(x + 0.0);
  return (u >> 63) ? ~u : (u | ((xm_u64)1 << 63));
}

/* Radix selection (passes of 8 bits over the keys, no sort): the key of the
 * k-th largest of the candidates and in *n_gt how many are strictly larger.
 * The candidates are t[0 .. nt) followed by v[s * stride], s < S, those of v
 * only when their key is above floor (use_floor: the streamed tail's least,
 * which no later scenario can tie into: xm_tail_row). Once the bucket
 * holding the k-th key has at most XM_SEL_CAP elements, one more pass gathers
 * them and a small selection finishes. */
#define XM_SEL_CAP 32
#define XM__SEL_KEY(i) ((i) < nt ? xm_key(t[(i)]) : xm_key(v[((i)-nt) * stride]))
#define XM__SEL_IN(i, key) ((i) < nt || !use_floor || (key) > floor)
XM_INLINE xm_u64 xm__select_radix(XM_GLOBAL const double *t, xm_i64 nt, XM_GLOBAL const double *v,
                                  xm_i64 stride, xm_i64 S, int use_floor, xm_u64 floor, xm_i64 k,
                                  XM_PRIVATE xm_i64 *n_gt) {
  xm_u64 prefix = 0, mask = 0;
  xm_i64 need = k, N = nt + S;
  xm_u32 hist[256];
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int b = 0; b < 256; b++)
      hist[b] = 0u;
    for (xm_i64 i = 0; i < N; i++) {
      xm_u64 key = XM__SEL_KEY(i);
      if ((key & mask) == prefix && XM__SEL_IN(i, key))
        hist[(key >> shift) & 255u]++;
    }
    int d = 255;
    while (d > 0 && (xm_i64)hist[d] < need) {
      need -= (xm_i64)hist[d];
      d--;
    }
    prefix |= (xm_u64)d << shift;
    mask |= (xm_u64)255 << shift;
    if (shift > 0 && hist[d] <= XM_SEL_CAP) {
      xm_u64 cand[XM_SEL_CAP];
      int m = 0;
      cand[0] = prefix;
      for (xm_i64 i = 0; i < N && m < XM_SEL_CAP; i++) {
        xm_u64 key = XM__SEL_KEY(i);
        if ((key & mask) == prefix && XM__SEL_IN(i, key))
          cand[m++] = key;
      }
      for (int i = 0; i < (int)need; i++) { /* partial selection sort, descending */
        int best = i;
        for (int j = i + 1; j < m; j++)
          if (cand[j] > cand[best])
            best = j;
        xm_u64 tmp = cand[i];
        cand[i] = cand[best];
        cand[best] = tmp;
      }
      if (need > m) /* cannot happen: the bucket holds at least need keys */
        need = m > 0 ? m : 1;
      xm_u64 kk = cand[need - 1];
      xm_i64 gt = 0;
      for (int j = 0; j < m; j++)
        gt += cand[j] > kk;
      *n_gt = (k - need) + gt;
      return kk;
    }
  }
  *n_gt = k - need;
  return prefix;
}

/* The selection. In C (the cpu backend) many candidates beside k first go
 * through a sample: XM__SEL_SAMPLE of them, evenly spaced, give a key that
 * some 2k + 4 sample shares of the candidates reach; those at or above it
 * are copied out in one pass (at most XM__SEL_FEW) and, when at least k,
 * hold every key the result counts: the radix passes run on the copy alone.
 * Too few or too many (an unlucky sample: sorted losses) leave the passes
 * over all of them, as the OpenCL kernels always take. */
#define XM__SEL_SAMPLE 64
#define XM__SEL_FEW 2048
XM_INLINE xm_u64 xm_select_kth2(XM_GLOBAL const double *t, xm_i64 nt, XM_GLOBAL const double *v,
                                xm_i64 stride, xm_i64 S, int use_floor, xm_u64 floor, xm_i64 k,
                                XM_PRIVATE xm_i64 *n_gt) {
#ifndef __OPENCL_VERSION__
  xm_i64 N = nt + S;
  if (k > 0 && N >= 4 * XM__SEL_SAMPLE && 4 * k <= N) {
    xm_u64 smp[XM__SEL_SAMPLE]; /* descending */
    xm_i64 ns = 0, gap = N / XM__SEL_SAMPLE;
    for (xm_i64 j = 0; j < XM__SEL_SAMPLE; j++) {
      xm_i64 i = j * gap, at = ns++;
      xm_u64 key = XM__SEL_KEY(i);
      if (!XM__SEL_IN(i, key)) {
        ns--;
        continue;
      }
      for (; at > 0 && smp[at - 1] < key; at--)
        smp[at] = smp[at - 1];
      smp[at] = key;
    }
    xm_i64 r = ns > 0 ? (2 * k * ns + N - 1) / N + 4 : ns;
    if (r < ns) {
      double cv[XM__SEL_FEW];
      xm_i64 m = 0;
      for (xm_i64 i = 0; i < N && m <= XM__SEL_FEW; i++) {
        xm_u64 key = XM__SEL_KEY(i);
        if (key >= smp[r] && XM__SEL_IN(i, key)) {
          if (m < XM__SEL_FEW)
            cv[m] = i < nt ? t[i] : v[(i - nt) * stride];
          m++;
        }
      }
      if (m >= k && m <= XM__SEL_FEW)
        return xm__select_radix(cv, m, cv, 1, 0, 0, 0, k, n_gt);
    }
  }
#endif
  return xm__select_radix(t, nt, v, stride, S, use_floor, floor, k, n_gt);
}
#undef XM__SEL_IN
#undef XM__SEL_KEY

/* The k-th largest key of v[s * stride], s < S (xm_select_kth2 on v alone). */
XM_INLINE xm_u64 xm_select_kth(XM_GLOBAL const double *v, xm_i64 stride, xm_i64 S, xm_i64 k,
                               XM_PRIVATE xm_i64 *n_gt) {
  return xm_select_kth2(v, 0, v, stride, S, 0, 0, k, n_gt);
}

/* k of METHODOLOGY.md section 3: max(1, ceil((1 - alpha) S - 1e-9)). */
XM_INLINE xm_i64 xm_tail_count(xm_i64 S, double alpha) {
  double t = ceil((1.0 - alpha) * (double)S - 1e-9);
  xm_i64 k = (xm_i64)t;
  if (k < 1)
    k = 1;
  if (k > S)
    k = S;
  return k;
}

/* A risk measure floored at 0; a non-finite one stays as it is, so that the
 * engine sees it and refuses the run (never a silent 0). */
XM_INLINE double xm_floor0(double m) { return m > 0.0 || !isfinite(m) ? m : 0.0; }

/* Risk measure of one row (unfloored). For worst, weights w (has_w) apply.
 * *s_at receives the scenario that gives worst/var (first on ties in the
 * stable order), for es the last one of the k tail scenarios. A non-finite
 * loss anywhere in the row makes the measure that loss (not a number the
 * comparisons below would silently skip) and *s_at its scenario, the first. */
XM_INLINE double xm_risk_measure(XM_GLOBAL const double *v, xm_i64 stride, xm_i64 S, int measure,
                                 xm_i64 k, XM_GLOBAL const double *w, int has_w,
                                 XM_PRIVATE xm_i64 *s_at, XM_PRIVATE xm_u64 *kkey,
                                 XM_PRIVATE xm_i64 *n_gt) {
  if (measure == XM_MEASURE_WORST) {
    double best = 0.0, badl = 0.0;
    xm_i64 bs = 0, bad = -1;
    for (xm_i64 s = 0; s < S; s++) {
      double l = has_w ? w[s] * v[s * stride] : v[s * stride];
      if (s == 0 || l > best) {
        best = l;
        bs = s;
      }
      if (bad < 0 && !isfinite(l)) {
        bad = s;
        badl = l;
      }
    }
    *s_at = bad >= 0 ? bad : bs;
    return bad >= 0 ? badl : best;
  }
  xm_u64 kk = xm_select_kth(v, stride, S, k, n_gt);
  *kkey = kk;
  /* The tail: every s with key > kk, then the first (k - n_gt) with key == kk. */
  xm_i64 ties = k - *n_gt;
  double sum = 0.0, vk = 0.0, badl = 0.0;
  xm_i64 seen = 0, bad = -1;
  *s_at = 0;
  for (xm_i64 s = 0; s < S; s++) {
    double l = v[s * stride];
    xm_u64 key = xm_key(l);
    if (bad < 0 && !isfinite(l)) {
      bad = s;
      badl = l;
    }
    if (key > kk) {
      sum += l;
    } else if (key == kk && seen < ties) {
      seen++;
      vk = l;
      sum += l;
      if (seen == ties)
        *s_at = s;
    }
  }
  if (bad >= 0) {
    *s_at = bad;
    return badl;
  }
  return measure == XM_MEASURE_VAR ? vk : sum / (double)k;
}

/* Silo g's positions of account a: 0 none, 1 some, 2 all of them (the
 * account's positions are sorted by silo). An all-zero silo row has measure
 * and share 0; when every position is in one silo, that silo's row is the
 * account's row summed in the same order, bit for bit, so its measure is the
 * account's. */
XM_INLINE int xm_silo_share(xm_i64 a, int g, XM_GLOBAL const int *pos_start,
                            XM_GLOBAL const int *pos_silo) {
  int p0 = pos_start[a], p1 = pos_start[a + 1];
  if (p1 == p0)
    return 0;
  if (pos_silo[p0] == pos_silo[p1 - 1])
    return pos_silo[p0] == g ? 2 : 0;
  for (int p = p0; p < p1 && pos_silo[p] <= g; p++)
    if (pos_silo[p] == g)
      return 1;
  return 0;
}

#define XM_TAIL 5 /* doubles per account in the tail scratch */

/* One (account, component) row of one set, c = 0 the whole account, 1 + g
 * silo g: its measure floored at 0 into by_set[a * K + x] (c = 0) or
 * silo_set[(a * G + g) * K + x]. For c = 0 it also leaves in tail[a * XM_TAIL ..]
 * what xm_attribute_account needs: the unfloored measure, the scenario that
 * gives it, the count of losses above the k-th and the k-th key's bits.
 * Rows xm_attribute_account fills (silos with no or all positions) are
 * skipped. L is laid out as lay says. */
XM_INLINE void xm_reduce_row(xm_i64 a, int c, xm_i64 S, xm_layout lay, int G,
                             XM_GLOBAL const double *L, int measure, xm_i64 k,
                             XM_GLOBAL const double *w, int has_w, xm_i64 K, xm_i64 x,
                             XM_GLOBAL const int *pos_start, XM_GLOBAL const int *pos_silo,
                             XM_GLOBAL double *by_set, XM_GLOBAL double *silo_set,
                             XM_GLOBAL double *tail) {
  if (c > 0 && xm_silo_share(a, c - 1, pos_start, pos_silo) != 1)
    return;
  xm_i64 s_at = 0, n_gt = 0;
  xm_u64 kk = 0;
  double m = xm_risk_measure(L + a * lay.ca + c * lay.cs, lay.ss, S, measure, k, w, has_w, &s_at,
                             &kk, &n_gt);
  if (c > 0) {
    silo_set[(a * G + c - 1) * K + x] = xm_floor0(m);
    return;
  }
  by_set[a * K + x] = xm_floor0(m);
  tail[a * XM_TAIL] = m;
  tail[a * XM_TAIL + 1] = (double)s_at;
  tail[a * XM_TAIL + 2] = (double)n_gt;
  /* the key's 64 bits as two 32-bit halves, each exact in a double */
  tail[a * XM_TAIL + 3] = (double)(kk >> 32);
  tail[a * XM_TAIL + 4] = (double)(kk & 0xffffffffu);
}

/* The silos' shares of account a's unfloored measure in one set (es: mean
 * over the k tail scenarios, ties by lower index; var: at the k-th; worst:
 * w_s L_g(s) at the worst), and the silo measures xm_reduce_row skipped.
 * Outputs at attr_set/silo_set[(a * G + g) * K + x]. */
XM_INLINE void xm_attribute_account(xm_i64 a, xm_i64 S, xm_layout lay, int G,
                                    XM_GLOBAL const double *L, int measure, xm_i64 k,
                                    XM_GLOBAL const double *w, int has_w, xm_i64 K, xm_i64 x,
                                    XM_GLOBAL const int *pos_start, XM_GLOBAL const int *pos_silo,
                                    XM_GLOBAL double *silo_set, XM_GLOBAL double *attr_set,
                                    XM_GLOBAL const double *tail) {
  XM_GLOBAL const double *row = L + a * lay.ca;
  xm_i64 R = lay.ss, cs = lay.cs;
  double m = tail[a * XM_TAIL];
  xm_i64 s_at = (xm_i64)tail[a * XM_TAIL + 1], n_gt = (xm_i64)tail[a * XM_TAIL + 2];
  xm_u64 kk = ((xm_u64)tail[a * XM_TAIL + 3] << 32) | (xm_u64)tail[a * XM_TAIL + 4];
  int any_es = 0;
  for (int g = 0; g < G; g++) {
    XM_GLOBAL double *at = attr_set + (a * G + g) * K + x;
    int share = xm_silo_share(a, g, pos_start, pos_silo);
    if (share != 1) { /* no positions: 0; all positions: the account's own */
      silo_set[(a * G + g) * K + x] = share == 2 ? xm_floor0(m) : 0.0;
      *at = share == 2 ? m : 0.0;
    } else if (measure == XM_MEASURE_WORST) {
      *at = (has_w ? w[s_at] : 1.0) * row[s_at * R + (1 + g) * cs];
    } else if (measure == XM_MEASURE_VAR) {
      *at = row[s_at * R + (1 + g) * cs];
    } else {
      *at = 0.0;
      any_es = 1;
    }
  }
  if (!any_es)
    return;
  /* es: one pass, the silo losses summed over the k tail scenarios */
  xm_i64 ties = k - n_gt, seen = 0;
  for (xm_i64 s = 0; s < S; s++) {
    xm_u64 key = xm_key(row[s * R]);
    if (key > kk || (key == kk && seen++ < ties))
      for (int g = 0; g < G; g++)
        if (xm_silo_share(a, g, pos_start, pos_silo) == 1)
          attr_set[(a * G + g) * K + x] += row[s * R + (1 + g) * cs];
  }
  for (int g = 0; g < G; g++)
    if (xm_silo_share(a, g, pos_start, pos_silo) == 1)
      attr_set[(a * G + g) * K + x] /= (double)k;
}

/* ---- the streamed tail (docs/engine.md): a group's scenarios in chunks of
 * L's rows, and per (set, account, component) only what the measures read ----
 *
 * The tail of a row is its k largest losses (worst: the largest, weighted)
 * in the order (key descending, scenario ascending) that xm_risk_measure's
 * ties follow, kept in scenario order: a chunk's candidates come after every
 * one held, so the tail of the held ones and the chunk's together is the
 * tail of the scenarios so far, and the measure sums it in the order the
 * whole row's pass does (the same bits). The whole account's entries carry
 * their silo losses (weighted for worst): its attribution.
 *
 * The record of (set j of the group, account a), XM_TREC(G, tk) doubles:
 *   [3c .. 3c + 3)  component c = 0 .. G: entries held, 1 once a loss was not
 *                   finite (the measure is then the first such), that loss;
 *   XM__TV(G, tk, c) component c's losses [tk] (tk: the group's largest k);
 *   XM__TS(G, tk)    component 0's entries' silo losses [tk x G]. */
#define XM_TREC(G, tk) (3 * ((G) + 1) + (tk) * (2 * (G) + 1))
#define XM__TV(G, tk, c) (3 * ((G) + 1) + ((c) == 0 ? 0 : (tk) * ((G) + (c))))
#define XM__TS(G, tk) (3 * ((G) + 1) + (tk))
#define XM__TAIL_FEW 1024 /* C: a chunk's candidates folded from a copy */

/* Folds ns more losses v[s * vs] (component c's; the whole account's carry
 * their silo g losses at sv[s * svs + g * svg]) that come after every one
 * held into the record's tail of component c: the k best of both (worst:
 * the first largest, weighted by w when has_w; a later one only when
 * larger). When k are held, a new loss must be above the least of them to
 * count (no later scenario ties into the tail). The losses are finite. */
XM_INLINE void xm__tail_fold(XM_GLOBAL double *rec, int c, int G, xm_i64 tk,
                             XM_GLOBAL const double *v, xm_i64 vs, XM_GLOBAL const double *sv,
                             xm_i64 svs, xm_i64 svg, xm_i64 ns, int measure, xm_i64 k,
                             XM_GLOBAL const double *w, int has_w) {
  XM_GLOBAL double *h = rec + 3 * c, *tv = rec + XM__TV(G, tk, c);
  XM_GLOBAL double *tg = rec + XM__TS(G, tk);
  xm_i64 n = (xm_i64)h[0];
  if (measure == XM_MEASURE_WORST) {
    int wt = has_w;
    double best = 0.0;
    xm_i64 bs = 0;
    for (xm_i64 s = 0; s < ns; s++) {
      double l = wt ? w[s] * v[s * vs] : v[s * vs];
      if (s == 0 || l > best) {
        best = l;
        bs = s;
      }
    }
    if (ns > 0 && (n == 0 || best > tv[0])) {
      tv[0] = best;
      for (int g = 0; c == 0 && g < G; g++)
        tg[g] = (has_w ? w[bs] : 1.0) * sv[bs * svs + g * svg];
      h[0] = 1.0;
    }
    return;
  }
  int full = n == k;
  xm_i64 n_gt = 0, m = 0, seen = 0;
  xm_u64 kk = 0;
#ifndef __OPENCL_VERSION__
  /* C: the candidates are copied out (losses and scenarios) in one pass,
   * then selected and kept from the copy alone. Once k are held they are the
   * chunk's losses above the least held one, lv (the losses are finite: a
   * loss's key is above that one's when the loss is above lv, -0 and +0
   * alike): few beside a chunk's (k of the scenarios so far), and none
   * changes nothing. Before, they are the chunk's losses at or above lv, a
   * loss of an evenly spaced sample of XM__SEL_SAMPLE of them that 2k + 4
   * sample shares reach, when k losses held or copied are at or above it:
   * then every loss the tail keeps is held or copied. Too many (or too few)
   * leave the passes below. Either way the tail's entries and order are the
   * passes': the same bits. */
  if (n + ns > k) {
    double lv = tv[0], smp[XM__SEL_SAMPLE];
    xm_i64 gap = ns / XM__SEL_SAMPLE, r = (2 * k * XM__SEL_SAMPLE + ns - 1) / (ns > 0 ? ns : 1) + 4;
    int cut = full || (gap >= 4 && r < XM__SEL_SAMPLE); /* a threshold lv */
    if (full) {
      XM__SIMD_REDUCE(min, lv)
      for (xm_i64 i = 1; i < n; i++)
        lv = tv[i] < lv ? tv[i] : lv;
    } else if (cut) {
      for (xm_i64 j = 0, at = 0; j < XM__SEL_SAMPLE; at = ++j) { /* descending */
        double l = v[j * gap * vs];
        for (; at > 0 && smp[at - 1] < l; at--)
          smp[at] = smp[at - 1];
        smp[at] = l;
      }
      lv = smp[r];
    }
    double cv[XM__TAIL_FEW];
    xm_i64 cs[XM__TAIL_FEW], nc = 0, reach = 0;
    for (xm_i64 s = 0; cut && s < ns; s++) {
      double l = v[s * vs];
      if (full ? l > lv : l >= lv) {
        if (nc < XM__TAIL_FEW)
          cv[nc] = l, cs[nc] = s;
        nc++;
      }
    }
    for (xm_i64 i = 0; cut && !full && i < n; i++)
      reach += tv[i] >= lv;
    if (cut && full && nc == 0)
      return;
    if (cut && nc <= XM__TAIL_FEW && (full || nc + reach >= k)) {
      kk = xm_select_kth2(tv, n, cv, 1, nc, 0, 0, k, &n_gt);
      xm_i64 ties = k - n_gt;
      for (xm_i64 i = 0; i < n + nc; i++) {
        double l = i < n ? tv[i] : cv[i - n];
        xm_u64 key = xm_key(l);
        if (key < kk || (key == kk && seen++ >= ties))
          continue;
        tv[m] = l;
        for (int g = 0; c == 0 && g < G; g++)
          tg[m * G + g] = i < n ? tg[i * G + g] : sv[cs[i - n] * svs + g * svg];
        m++;
      }
      h[0] = (double)m;
      return;
    }
  }
#endif
  xm_u64 least = 0;
  for (xm_i64 i = 0; full && i < n; i++) {
    xm_u64 key = xm_key(tv[i]);
    least = i == 0 || key < least ? key : least;
  }
  int all = n + ns <= k;
  if (!all)
    kk = xm_select_kth2(tv, n, v, vs, ns, full, least, k, &n_gt);
  xm_i64 ties = k - n_gt;
  for (xm_i64 i = 0; i < n + ns; i++) {
    double l = i < n ? tv[i] : v[(i - n) * vs];
    xm_u64 key = xm_key(l);
    if (!all && ((i >= n && full && key <= least) || key < kk || (key == kk && seen++ >= ties)))
      continue;
    tv[m] = l;
    for (int g = 0; c == 0 && g < G; g++)
      tg[m * G + g] = i < n ? tg[i * G + g] : sv[(i - n) * svs + g * svg];
    m++;
  }
  h[0] = (double)m;
}

/* One (account, component) row's tail after ns more scenarios: L's rows from
 * the caller's offset on (laid out as lay says), their weights w (has_w),
 * first: the set's first chunk (the record starts empty). A non-finite loss
 * (weighted, for worst) ends the row: its measure is the first such. */
XM_INLINE void xm_tail_row(xm_i64 a, int c, int G, XM_GLOBAL const double *L, xm_layout lay,
                           xm_i64 ns, int measure, xm_i64 k, XM_GLOBAL const double *w, int has_w,
                           int first, XM_GLOBAL const int *pos_start, XM_GLOBAL const int *pos_silo,
                           XM_GLOBAL double *rec, xm_i64 tk) {
  if (c > 0 && xm_silo_share(a, c - 1, pos_start, pos_silo) != 1)
    return;
  XM_GLOBAL double *h = rec + 3 * c;
  XM_GLOBAL const double *row = L + a * lay.ca + c * lay.cs;
  if (first)
    h[0] = h[1] = h[2] = 0.0;
  if (h[1] != 0.0)
    return;
  int wt = measure == XM_MEASURE_WORST && has_w, bad = 1;
#ifndef __OPENCL_VERSION__
  bad = 0; /* C: a vector pass first; the first such loss only when there is one */
  XM__SIMD_REDUCE(|, bad)
  for (xm_i64 s = 0; s < ns; s++)
    bad |= !isfinite(wt ? w[s] * row[s * lay.ss] : row[s * lay.ss]);
#endif
  for (xm_i64 s = 0; bad && s < ns; s++) {
    double l = wt ? w[s] * row[s * lay.ss] : row[s * lay.ss];
    if (!isfinite(l)) {
      h[1] = 1.0;
      h[2] = l;
      return;
    }
  }
  xm__tail_fold(rec, c, G, tk, row, lay.ss, L + a * lay.ca + lay.cs, lay.ss, lay.cs, ns, measure, k,
                w, wt);
}

/* Folds the record src, of scenarios after every one of dst's (the next
 * part of a set split across processes, docs/scaling.md), into dst, both of
 * account a in the layout of tk: dst is then the tail of both parts, bit for
 * bit the one a single pass over them makes. A part without scenarios holds
 * nothing (0 entries). */
XM_INLINE void xm_tail_merge(xm_i64 a, int G, XM_GLOBAL double *dst, XM_GLOBAL const double *src,
                             xm_i64 tk, int measure, xm_i64 k, XM_GLOBAL const int *pos_start,
                             XM_GLOBAL const int *pos_silo) {
  for (int c = 0; c <= G; c++) {
    if (c > 0 && xm_silo_share(a, c - 1, pos_start, pos_silo) != 1)
      continue;
    XM_GLOBAL double *h = dst + 3 * c;
    XM_GLOBAL const double *hs = src + 3 * c;
    if (h[1] != 0.0)
      continue;
    if (hs[1] != 0.0) {
      h[1] = hs[1];
      h[2] = hs[2];
      continue;
    }
    xm__tail_fold(dst, c, G, tk, src + XM__TV(G, tk, c), 1, src + XM__TS(G, tk), G, 1,
                  (xm_i64)hs[0], measure, k, src, 0);
  }
}

/* The measures of one (account, component) row of set x from its tail
 * (xm_reduce_row's outputs), and for c = 0 the account's attribution
 * (xm_attribute_account's): the same numbers from the entries the whole
 * row's pass would sum, in its order. A row that saw a non-finite loss
 * measures that loss, and its attribution is NaN: the engine refuses the run. */
XM_INLINE void xm_tail_measure(xm_i64 a, int c, int G, XM_GLOBAL const double *rec, xm_i64 tk,
                               int measure, xm_i64 k, xm_i64 K, xm_i64 x,
                               XM_GLOBAL const int *pos_start, XM_GLOBAL const int *pos_silo,
                               XM_GLOBAL double *by_set, XM_GLOBAL double *silo_set,
                               XM_GLOBAL double *attr_set) {
  if (c > 0 && xm_silo_share(a, c - 1, pos_start, pos_silo) != 1)
    return;
  XM_GLOBAL const double *h = rec + 3 * c, *tv = rec + XM__TV(G, tk, c);
  XM_GLOBAL const double *tg = rec + XM__TS(G, tk);
  xm_i64 at = 0, n = measure == XM_MEASURE_WORST ? 1 : k;
  double m = tv[0];
  if (h[1] != 0.0) {
    m = h[2];
    at = -1;
  } else if (measure != XM_MEASURE_WORST) {
    xm_u64 least = 0;
    double sum = 0.0;
    for (xm_i64 i = 0; i < n; i++) { /* the k-th: the last entry of the least key */
      xm_u64 key = xm_key(tv[i]);
      if (i == 0 || key <= least) {
        least = key;
        at = i;
      }
      sum += tv[i];
    }
    m = measure == XM_MEASURE_VAR ? tv[at] : sum / (double)k;
  }
  if (c > 0) {
    silo_set[(a * G + c - 1) * K + x] = xm_floor0(m);
    return;
  }
  by_set[a * K + x] = xm_floor0(m);
  for (int g = 0; g < G; g++) {
    XM_GLOBAL double *o = attr_set + (a * G + g) * K + x;
    int share = xm_silo_share(a, g, pos_start, pos_silo);
    if (share != 1) { /* no positions: 0; all positions: the account's own */
      silo_set[(a * G + g) * K + x] = share == 2 ? xm_floor0(m) : 0.0;
      *o = share == 2 ? m : 0.0;
    } else if (at < 0) {
      *o = NAN;
    } else if (measure != XM_MEASURE_ES) {
      *o = tg[at * G + g];
    } else {
      double sum = 0.0;
      for (xm_i64 i = 0; i < k; i++)
        sum += tg[i * G + g];
      *o = sum / (double)k;
    }
  }
}

/* The liquidity add-on LQ of account a (METHODOLOGY.md section 4.1), for
 * each component c (0: all its positions, 1 + g: silo g's) into
 * lq[a * (G + 1) + c]. Its exposures e in lq_start[r] .. lq_start[r + 1]
 * (r = a * (G + 1) + c; host/liquidity.c lists them) are the price factors
 * lq_fac[e] (a shock column) that it holds through some row's slot, each
 * with its contributions lq_contrib[lq_cstart[e] .. lq_cstart[e + 1]):
 * position << XM_SLOT_BITS | slot (shifts, not a division: oclgrind cannot
 * follow the freeze LLVM puts between a division and its remainder). E = sum of quantity x the
 * row's delta-notional (xm_sens_row); LQ = sum |E| (s + k sqrt(|E| X_b / A)), with fpar = the
 * columns' half_spread [F], impact [F], adv [F]; only factors with s or k
 * non-zero are listed. */
XM_INLINE void xm_liquidity_account(xm_i64 a, int G, XM_GLOBAL const int *lq_start,
                                    XM_GLOBAL const int *lq_fac, XM_GLOBAL const int *lq_cstart,
                                    XM_GLOBAL const int *lq_contrib, XM_GLOBAL const int *pos_inst,
                                    XM_GLOBAL const double *pos_qty, XM_GLOBAL const double *sens,
                                    xm_i64 n, XM_GLOBAL const double *fpar, xm_i64 F,
                                    XM_GLOBAL const double *xb, XM_GLOBAL double *lq) {
  for (int c = 0; c <= G; c++) {
    xm_i64 r = a * (G + 1) + c;
    double sum = 0.0;
    for (int e = lq_start[r]; e < lq_start[r + 1]; e++) {
      double E = 0.0;
      for (int t = lq_cstart[e]; t < lq_cstart[e + 1]; t++) {
        int q = lq_contrib[t] >> XM_SLOT_BITS, j = lq_contrib[t] & ((1 << XM_SLOT_BITS) - 1);
        E += pos_qty[q] * sens[j * n + pos_inst[q]];
      }
      int f = lq_fac[e];
      double s = fpar[f], k = fpar[F + f], adv = fpar[2 * F + f], aE = fabs(E);
      double impact = k > 0.0 && adv > 0.0 ? k * sqrt(aE * xb[a] / adv) : 0.0;
      sum += aE * (s + impact);
    }
    lq[r] = sum;
  }
}

/* Per-account results of METHODOLOGY.md section 4 from the per-set results
 * and the add-ons lq [na x (G + 1)] (xm_liquidity_account; all 0 when no
 * factor has a spread or an impact). out_acct[a * XM_NOUT + XM_O_*],
 * out_silo[(a * G + g) * XM_NSILO + XM_S_*]. The minimum counts |q| x
 * multiplier (over X_b) over option positions (a row's XM_ID_MINW), the
 * account's and each silo's. beta = apc.buffer. An eligible account owes
 * max((1 + beta) C, Min); one that is not, the sum of its silos' own
 * requirements M_g = max((1 + beta)(S_g + LQ_g), Min_g). */
#define XM_O_REQUIREMENT 0
#define XM_O_UNIFIED 1 /* U + LQ */
#define XM_O_SILOED 2  /* sum of S_g + LQ_g */
#define XM_O_DIVERSIFICATION 3
#define XM_O_MINIMUM 4
#define XM_O_BINDING 5
#define XM_O_CROSSED 6 /* C */
#define XM_O_LIQUIDITY 7
#define XM_O_MINBINDS 8
#define XM_O_HEDGE 9 /* offset_cap x D (eligible), else 0 */
#define XM_NOUT 10
#define XM_S_BYSILO 0 /* S_g + LQ_g */
#define XM_S_ATTR 1
#define XM_S_LQ 2
#define XM_S_REQ 3 /* M_g */
#define XM_NSILO 4
/* Column x of a combine's K sets: the day's own ones (x < kown) from the
 * caller's offset pointer on, the others rx further (a backtest batch keeps
 * the sets every day shares once, after day 0's own: rx = -x0 takes them
 * there). A run: kown = K. */
XM_INLINE xm_i64 xm_combine_col(xm_i64 x, xm_i64 kown, xm_i64 rx) { return x < kown ? x : x + rx; }

XM_INLINE void xm_combine_account(
    xm_i64 a, int G, xm_i64 K, xm_i64 kst, xm_i64 kown, xm_i64 rx, XM_GLOBAL double *by_set,
    XM_GLOBAL double *silo_set, XM_GLOBAL double *attr_set, XM_GLOBAL const int *cross,
    XM_GLOBAL const int *pos_start, XM_GLOBAL const int *pos_inst, XM_GLOBAL const int *pos_silo,
    XM_GLOBAL const double *pos_qty, xm_i64 n, XM_GLOBAL const double *instd,
    XM_GLOBAL const double *lq, double offset_cap, double per_contract, double beta, xm_i64 sp,
    double spw, int sp_empty, XM_GLOBAL double *out_acct, XM_GLOBAL double *out_silo) {
  /* The K sets combined are columns 0 .. K of rows kst apart (a backtest
   * combines each day's sets from one array of many days: the caller
   * offsets the pointers to the day's first set). The stressed period
   * (METHODOLOGY.md section 1) is set sp (-1: none): a backtest day on which
   * it has no window measures 0 (sp_empty); with weight spw > 0 the
   * historical set (0) becomes (1 - spw) R_hist + spw R_sp, for the account,
   * each silo and the attribution, and sp leaves the max. */
  xm_i64 skip = sp >= 0 && spw > 0.0 ? sp : -1;
  if (sp >= 0) {
    for (int g = -1; g < G; g++) {
      XM_GLOBAL double *v = g < 0 ? by_set + a * kst : silo_set + (a * G + g) * kst;
      XM_GLOBAL double *t = attr_set + (a * G + (g < 0 ? 0 : g)) * kst;
      if (sp_empty) {
        v[sp] = 0.0;
        if (g >= 0)
          t[sp] = 0.0;
      } else if (skip >= 0) {
        v[0] = (1.0 - spw) * v[0] + spw * v[sp];
        if (g >= 0)
          t[0] = (1.0 - spw) * t[0] + spw * t[sp];
      }
    }
  }
  /* A non-finite measure of any set (xm_floor0 keeps it) binds: the requirement
   * is then not finite, and the engine refuses the run naming its cause. */
  double U = by_set[a * kst];
  xm_i64 bind = 0;
  for (xm_i64 x = 1; x < K && isfinite(U); x++) {
    double bx = by_set[a * kst + xm_combine_col(x, kown, rx)];
    if (x != skip && (bx > U || !isfinite(bx))) {
      U = bx;
      bind = x;
    }
  }
  XM_GLOBAL double *os = out_silo + a * G * XM_NSILO;
  /* option contracts x multiplier, over X_b in an account of currency b (a
   * row's XM_ID_MINW: 0 for the other types); each silo's in its M_g slot */
  for (int g = 0; g < G; g++)
    os[g * XM_NSILO + XM_S_REQ] = 0.0;
  double contracts = 0.0;
  for (int p = pos_start[a]; p < pos_start[a + 1]; p++) {
    double wgt = fabs(pos_qty[p]) * instd[XM_ID_MINW * n + pos_inst[p]];
    contracts += wgt;
    os[pos_silo[p] * XM_NSILO + XM_S_REQ] += wgt;
  }
  double mn = per_contract * contracts, b1 = 1.0 + beta;
  double sil = 0.0, msum = 0.0;
  int silo_min = 0;
  for (int g = 0; g < G; g++) {
    XM_GLOBAL const double *sg = silo_set + (a * G + g) * kst;
    double c = sg[0];
    for (xm_i64 x = 1; x < K && isfinite(c); x++) {
      double sx = sg[xm_combine_col(x, kown, rx)];
      c = x != skip && (sx > c || !isfinite(sx)) ? sx : c;
    }
    double lg = lq[a * (G + 1) + 1 + g], core = c + lg;
    double mg = per_contract * os[g * XM_NSILO + XM_S_REQ], bg = b1 * core;
    os[g * XM_NSILO + XM_S_BYSILO] = core;
    os[g * XM_NSILO + XM_S_ATTR] = attr_set[(a * G + g) * kst + xm_combine_col(bind, kown, rx)];
    os[g * XM_NSILO + XM_S_LQ] = lg;
    os[g * XM_NSILO + XM_S_REQ] = bg > mg || !isfinite(bg) ? bg : mg;
    silo_min |= mg >= bg && mg > 0.0;
    sil += core;
    msum += os[g * XM_NSILO + XM_S_REQ];
  }
  double lqa = lq[a * (G + 1)], uni = U + lqa;
  double D = xm_floor0(sil - uni);
  double C = cross[a] ? uni + (1.0 - offset_cap) * D : sil;
  if (!isfinite(sil))
    C = sil; /* a silo's non-finite measure also fails a cross-margined account */
  double bc = b1 * C;
  XM_GLOBAL double *o = out_acct + a * XM_NOUT;
  o[XM_O_REQUIREMENT] = cross[a] ? (bc > mn || !isfinite(bc) ? bc : mn) : msum;
  o[XM_O_UNIFIED] = uni;
  o[XM_O_SILOED] = sil;
  o[XM_O_DIVERSIFICATION] = D;
  o[XM_O_MINIMUM] = mn;
  o[XM_O_BINDING] = (double)bind;
  o[XM_O_CROSSED] = C;
  o[XM_O_LIQUIDITY] = lqa;
  o[XM_O_MINBINDS] = cross[a] ? (double)(mn >= bc && mn > 0.0) : (double)silo_min;
  o[XM_O_HEDGE] = cross[a] ? offset_cap * D : 0.0;
}

#endif
