// The probe concept: what the self-consuming loop asks of the classifier it trains on G0's latents
// of the real set (self_consuming's Probe policy). softmax_probe (the paper's) and centroid_probe
// satisfy it; a user's classifier does when it offers the same three calls.
#pragma once

#include <concepts>
#include <cstdint>
#include <vector>

#include "ouro/core/tensor.hpp"
#include "ouro/probe/softmax_probe.hpp"

namespace ouro::probe {

// fit(h (N, D), labels, K, options) trains on real latents and labels in [0, K) and reports its
// train and held-out accuracy (fit_options' holdout_fraction and split_seed name the held-out
// rows); confidence(h, labels) is ξ(x, y), the probability of each row's own label (N), by which
// LSF ranks the pool; predict(h) gives each unlabelled row's class and its probability (the labels
// of an unconditional model's samples). Default-constructible and movable: the loop holds one.
template <class P>
concept latent_probe = std::default_initializable<P> && std::movable<P> &&
    requires(P& p, const P& cp, tensor_view<const float> h, const std::vector<std::int64_t>& labels,
             std::int64_t classes, const fit_options& options) {
    { p.fit(h, labels, classes, options) } -> std::same_as<fit_report>;
    { cp.confidence(h, labels) } -> std::same_as<tensor<double>>;
    { cp.predict(h) } -> std::same_as<prediction>;
};

static_assert(latent_probe<softmax_probe>);

}  // namespace ouro::probe
