// The toy world of the self-consuming loop (for teaching and fast tests): a 2-D Gaussian mixture
// with K modes on a circle, labelled by mode, and the statistics that show collapse: per-mode
// coverage and spread; the mixture as a data set of (2, 1, 1) "images", so the loop's trainer,
// sampler and latent extractor take it unchanged; and the identity features its metrics use.
// The MLP denoiser that learns it is in loop/toy_model.hpp.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
#include <string>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/core/philox.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/data/mnist.hpp"

namespace ouro::loop::toy {

// The Philox purpose of the mixture's points.
inline constexpr rng_purpose mixture_purpose = rng_purpose::toy_data;

struct mixture {
    std::int64_t modes = 8;
    double radius = 2.0;  // circle the mode centres lie on
    double sigma = 0.1;   // per-axis standard deviation of each mode

    // Centre of mode k: radius * (cos 2πk/K, sin 2πk/K).
    std::array<double, 2> centre(std::int64_t k) const {
        const double a = 2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(modes);
        return {radius * std::cos(a), radius * std::sin(a)};
    }

    // n points per mode (balanced labels), (n*K, 2) flattened; point i of mode k from Philox(seed, purpose, k*n+i).
    void sample(std::int64_t per_mode, std::uint64_t seed, std::vector<float>& points,
                std::vector<std::int64_t>& labels) const {
        require(modes > 0 && per_mode >= 0, "toy::mixture::sample: expected modes > 0 and per_mode >= 0, found ", modes,
                " and ", per_mode);
        points.clear();
        labels.clear();
        for (std::int64_t k = 0; k < modes; ++k) {
            const auto c = centre(k);
            for (std::int64_t i = 0; i < per_mode; ++i) {
                philox_stream rng(seed, mixture_purpose, static_cast<std::uint64_t>(k * per_mode + i));
                // Box-Muller on two uniforms in (0, 1].
                const double u1 = (static_cast<double>(rng.next_u32()) + 1.0) / 4294967296.0;
                const double u2 = static_cast<double>(rng.next_u32()) / 4294967296.0;
                const double r = std::sqrt(-2.0 * std::log(u1));
                points.push_back(static_cast<float>(c[0] + sigma * r * std::cos(2.0 * std::numbers::pi * u2)));
                points.push_back(static_cast<float>(c[1] + sigma * r * std::sin(2.0 * std::numbers::pi * u2)));
                labels.push_back(k);
            }
        }
    }

    // The mode whose centre is nearest to (x, y); ties go to the lower index.
    std::int64_t nearest_mode(double x, double y) const {
        std::int64_t best = 0;
        double best_d = INFINITY;
        for (std::int64_t k = 0; k < modes; ++k) {
            const auto c = centre(k);
            const double d = (x - c[0]) * (x - c[0]) + (y - c[1]) * (y - c[1]);
            if (d < best_d) {
                best_d = d;
                best = k;
            }
        }
        return best;
    }
};

struct collapse_stats {
    std::int64_t covered_modes = 0;  // modes holding >= min_share of the points within `within` of their centre
    double spread = 0.0;             // mean distance of a point to its nearest mode centre
};

// points: (n, 2) flattened. A mode counts as covered when at least min_share * n / K points lie
// within `within` of its centre (so a uniform spread over K modes covers each at min_share <= 1).
inline collapse_stats statistics(const mixture& m, std::span<const float> points, double within = 0.5,
                                 double min_share = 0.25) {
    if (points.size() % 2 != 0) fail("toy::statistics: expected (n, 2) points, found ", points.size(), " floats");
    const auto n = static_cast<std::int64_t>(points.size() / 2);
    collapse_stats out;
    if (n == 0) return out;
    std::vector<std::int64_t> near(static_cast<std::size_t>(m.modes), 0);
    double total = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
        const double x = points[static_cast<std::size_t>(2 * i)], y = points[static_cast<std::size_t>(2 * i + 1)];
        const std::int64_t k = m.nearest_mode(x, y);
        const auto c = m.centre(k);
        const double d = std::hypot(x - c[0], y - c[1]);
        total += d;
        if (d <= within) ++near[static_cast<std::size_t>(k)];
    }
    out.spread = total / static_cast<double>(n);
    const double need = min_share * static_cast<double>(n) / static_cast<double>(m.modes);
    for (auto c : near) out.covered_modes += static_cast<double>(c) >= need;
    return out;
}

// The mixture as a labelled data set: images (per_mode * K, 2, 1, 1), labels the modes.
inline data::image_dataset make_dataset(const mixture& m, std::int64_t per_mode, std::uint64_t seed,
                                        std::string name = "toy-mixture") {
    std::vector<float> points;
    std::vector<std::int64_t> labels;
    m.sample(per_mode, seed, points, labels);
    data::image_dataset set;
    set.name = std::move(name);
    set.num_classes = m.modes;
    const auto n = static_cast<std::int64_t>(labels.size());
    set.images = tensor<float>(shape{n, 2, 1, 1});
    std::copy(points.begin(), points.end(), set.images.begin());
    set.labels = tensor<std::int64_t>(shape{n});
    std::copy(labels.begin(), labels.end(), set.labels.begin());
    return set;
}

// The metrics' features for points: the coordinates themselves, (N, 2, 1, 1) -> (N, 2).
struct point_features {
    std::int64_t feature_dim() const { return 2; }
    tensor<float> features(tensor_view<const float> images) const {
        require(images.rank() == 4 && images.dim(1) == 2 && images.dim(2) == 1 && images.dim(3) == 1,
                "toy::point_features: expected points (N, 2, 1, 1), found shape ", images.dims());
        tensor<float> out(shape{images.dim(0), 2});
        std::copy(images.begin(), images.end(), out.begin());
        return out;
    }
};

}  // namespace ouro::loop::toy
