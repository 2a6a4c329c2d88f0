// CPU kernels: the sinusoidal timestep embedding of diffusion U-Nets (guided-diffusion's
// `timestep_embedding`) and the class-label embedding lookup (torch.nn.Embedding), with gradients.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "ouro/core/error.hpp"
#include "ouro/core/parallel.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::cpu_kernels {

struct embedding_ops {
    // Sinusoidal embedding of (possibly fractional) timesteps, as openai/guided-diffusion nn.py
    // `timestep_embedding` (after Vaswani et al. 2017, sec. 3.5), with half = dim / 2:
    //   freq_i = exp(−ln(max_period)·i / half),  i = 0 .. half − 1
    //   y[b] = [cos(t_b·freq_0 .. t_b·freq_{half−1}), sin(t_b·freq_0 ..), 0 if dim is odd]
    // (cos first; the original DDPM code puts sin first and divides by half − 1.) Computed in
    // double and rounded once to T. Requires t (B) with B >= 1, y (B, dim) with dim >= 1,
    // max_period > 0. Overwrites y.
    template <real_scalar T>
    static void sinusoidal_timestep_embedding(tensor_view<const T> t,  // (B)
                                              tensor_view<T> y,        // (B, dim)
                                              double max_period = 10000.0) {
        const std::int64_t b_count = check_timesteps_("sinusoidal_timestep_embedding", t, y, max_period);
        const std::int64_t dim = y.dim(1), half = dim / 2;
        parallel_for(
            b_count,
            [&](std::int64_t b) {
                T* row = y.data() + b * dim;
                const double tb = static_cast<double>(t[b]);
                for (std::int64_t i = 0; i < half; ++i) {
                    const double arg = tb * frequency_(i, half, max_period);
                    row[i] = static_cast<T>(std::cos(arg));
                    row[half + i] = static_cast<T>(std::sin(arg));
                }
                if (dim % 2) row[dim - 1] = T(0);
            },
            40 * dim);
    }

    // Gradient of sinusoidal_timestep_embedding with respect to the timesteps:
    //   dt_b = Σ_i freq_i·(−dy[b, i]·sin(t_b·freq_i) + dy[b, half + i]·cos(t_b·freq_i))
    // Requires t (B) of the forward, dy (B, dim), dt (B). Overwrites dt.
    template <real_scalar T>
    static void sinusoidal_timestep_embedding_backward(tensor_view<const T> t,   // (B)
                                                       tensor_view<const T> dy,  // (B, dim)
                                                       tensor_view<T> dt,        // (B)
                                                       double max_period = 10000.0) {
        const std::int64_t b_count = check_timesteps_("sinusoidal_timestep_embedding_backward", t, dy, max_period);
        require_shape(dt.dims(), t.dims(), "sinusoidal_timestep_embedding_backward dt (B)");
        const std::int64_t dim = dy.dim(1), half = dim / 2;
        parallel_for(
            b_count,
            [&](std::int64_t b) {
                const T* row = dy.data() + b * dim;
                const double tb = static_cast<double>(t[b]);
                double sum = 0;
                for (std::int64_t i = 0; i < half; ++i) {
                    const double f = frequency_(i, half, max_period), arg = tb * f;
                    sum += f * (static_cast<double>(row[half + i]) * std::cos(arg) -
                                static_cast<double>(row[i]) * std::sin(arg));
                }
                dt[b] = static_cast<T>(sum);
            },
            40 * dim);
    }

    // y[b] = table[labels[b]] (torch.nn.functional.embedding). Requires labels (B) with B >= 1 and
    // every label in [0, num_classes), table (num_classes, dim), y (B, dim). Overwrites y.
    template <real_scalar T>
    static void label_embedding_forward(tensor_view<const std::int64_t> labels,  // (B)
                                        tensor_view<const T> table,              // (num_classes, dim)
                                        tensor_view<T> y) {                      // (B, dim)
        check_labels_("label_embedding_forward", labels, table.dims());
        const std::int64_t b_count = labels.dim(0), dim = table.dim(1);
        require_shape(y.dims(), shape{b_count, dim}, "label_embedding_forward y (B, dim)");
        for (std::int64_t b = 0; b < b_count; ++b)
            std::memcpy(y.data() + b * dim, table.data() + labels[b] * dim, static_cast<std::size_t>(dim) * sizeof(T));
    }

    // dtable[labels[b]] += dy[b], for b = 0, 1, ... in order, so repeated labels sum the same way at
    // any thread count. Requires labels (B) as in the forward, dy (B, dim), dtable (num_classes, dim).
    // Accumulates into dtable.
    template <real_scalar T>
    static void label_embedding_backward(tensor_view<const std::int64_t> labels,  // (B)
                                         tensor_view<const T> dy,                 // (B, dim)
                                         tensor_view<T> dtable) {                 // (num_classes, dim)
        check_labels_("label_embedding_backward", labels, dtable.dims());
        const std::int64_t b_count = labels.dim(0), dim = dtable.dim(1);
        require_shape(dy.dims(), shape{b_count, dim}, "label_embedding_backward dy (B, dim)");
        for (std::int64_t b = 0; b < b_count; ++b) {
            T* dst = dtable.data() + labels[b] * dim;
            const T* src = dy.data() + b * dim;
            for (std::int64_t j = 0; j < dim; ++j) dst[j] += src[j];
        }
    }

private:
    static double frequency_(std::int64_t i, std::int64_t half, double max_period) {
        return std::exp(-std::log(max_period) * static_cast<double>(i) / static_cast<double>(half));
    }

    template <class T, class U>
    static std::int64_t check_timesteps_(const char* what, tensor_view<const T> t, tensor_view<U> y,
                                         double max_period) {
        require_rank(t.dims(), 1, what, "t (B)");
        require_rank(y.dims(), 2, what, "(B, dim)");
        require(t.dim(0) > 0, what, ": expected a non-empty batch, found t of shape ", t.dims());
        require(y.dim(0) == t.dim(0) && y.dim(1) > 0, what, ": expected an embedding of shape (", t.dim(0),
                ", dim) with dim >= 1 for t of shape ", t.dims(), ", found shape ", y.dims());
        require(max_period > 0, what, ": expected max_period > 0, found ", max_period);
        return t.dim(0);
    }

    static void check_labels_(const char* what, tensor_view<const std::int64_t> labels, const shape& table) {
        require_rank(labels.dims(), 1, what, "labels (B)");
        if (table.rank() != 2) fail(what, ": expected a table of shape (num_classes, dim), found shape ", table);
        require(labels.dim(0) > 0, what, ": expected a non-empty batch, found labels of shape ", labels.dims());
        const std::int64_t classes = table[0];
        for (std::int64_t b = 0; b < labels.dim(0); ++b)
            if (labels[b] < 0 || labels[b] >= classes)
                fail(what, ": label ", labels[b], " at index ", b, " is out of range for ", classes,
                     " classes (expected 0 <= label < ", classes, ")");
    }
};

}  // namespace ouro::cpu_kernels
