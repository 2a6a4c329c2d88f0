// The metrics the loop computes on each generation's evaluation samples (self_consuming's Metrics
// policy): fitted once on the features of the real reference images, then asked for one
// metric_row per (method, generation). A set fills the columns it computes and leaves the others
// NaN, which the report, the CSV files and the seed summaries carry through as "not measured".
//
//   paper_metrics   FID with its bootstrap interval, precision / recall (k = 3 and 5), density,
//                   coverage and KID: what the paper reports, and more (the default)
//   fid_only        FID and its interval alone: a fraction of the time, for quick sweeps
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>

#include "ouro/core/tensor.hpp"
#include "ouro/loop/report.hpp"
#include "ouro/metrics/fid.hpp"
#include "ouro/metrics/kid.hpp"
#include "ouro/metrics/precision_recall.hpp"

namespace ouro::loop {

// The loop's settings a metric set may use (from loop_options) and the seed of this evaluation's
// bootstrap.
struct metric_settings {
    metrics::prdc_options prdc{};
    std::int64_t kid_subsets = 100, kid_subset_size = 1000;
    std::int64_t fid_bootstrap_replicates = 200;  // 0: no interval
    std::uint64_t kid_seed = 0;
    std::uint64_t bootstrap_seed = 0;
};

// fit_reference(features (M, D)) once per start; evaluate(features (N, D), settings) per step.
template <class M>
concept metric_set = std::default_initializable<M> &&
    requires(M& m, const M& cm, tensor_view<const float> f, const metric_settings& s) {
    m.fit_reference(f);
    { cm.evaluate(f, s) } -> std::same_as<metric_row>;
};

// FID (Heusel et al. 2017) and its percentile bootstrap interval over the evaluation samples.
struct fid_only {
    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    void fit_reference(tensor_view<const float> reference) {
        stats_ = metrics::fit_gaussian(reference);
    }

    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    metric_row evaluate(tensor_view<const float> f, const metric_settings& s) const {
        metric_row m;
        m.fid = metrics::fid(stats_, f);
        if (s.fid_bootstrap_replicates > 0) {
            const auto ci = metrics::fid_bootstrap_interval(stats_, f, s.fid_bootstrap_replicates, s.bootstrap_seed);
            m.fid_ci_low = ci.low;
            m.fid_ci_high = ci.high;
        }
        return m;
    }

private:
    metrics::gaussian_stats stats_;
};

// fid_only's columns, precision and recall (Kynkäänniemi et al. 2019) at prdc.k and at k = 5,
// density and coverage (Naeem et al. 2020) and KID (Bińkowski et al. 2018).
struct paper_metrics {
    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    void fit_reference(tensor_view<const float> reference) {
        fid_.fit_reference(reference);
        reference_ = to_tensor(reference);
    }

    template <class = void>  // compiled only where called (why: benchmarks/header-compile-times)
    metric_row evaluate(tensor_view<const float> f, const metric_settings& s) const {
        metric_row m = fid_.evaluate(f, s);
        const auto pr = metrics::prdc(reference_.view(), f, s.prdc);
        m.precision = pr.precision;
        m.recall = pr.recall;
        m.density = pr.density;
        m.coverage = pr.coverage;
        metrics::prdc_options k5 = s.prdc;
        k5.k = 5;  // Kynkäänniemi et al. (2019) report k = 3 and k = 5
        const auto pr5 = metrics::prdc(reference_.view(), f, k5);
        m.precision_k5 = pr5.precision;
        m.recall_k5 = pr5.recall;
        const std::int64_t subset = std::min({s.kid_subset_size, f.dim(0), reference_.dim(0)});
        const auto kd =
            metrics::kid(reference_.view(), f, {.subsets = s.kid_subsets, .subset_size = subset, .seed = s.kid_seed});
        m.kid = kd.mean;
        return m;
    }

private:
    fid_only fid_;
    tensor<float> reference_;  // (M, D)
};

static_assert(metric_set<fid_only>);
static_assert(metric_set<paper_metrics>);

}  // namespace ouro::loop
