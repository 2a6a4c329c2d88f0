// Negative guidance by an auxiliary model, as in SIMS (Alemohammad, Humayun, Agarwal, Collomosse,
// Baraniuk, "Self-Improving Diffusion Models with Synthetic Data", arXiv 2408.16333, §3, Eq. 4):
// a base denoiser and an auxiliary one fine-tuned on the base model's own samples, combined as
//
//     pred = (1 + ω) · pred_base − ω · pred_aux
//
// which steers sampling away from what the model already generates (the synthetic manifold) and so
// toward the real data. Both models predict the same parameterisation; the combination is linear,
// so it is the same for ε, x₀ or v. negative_guidance is itself a denoiser: any sampler runs it.
#pragma once

#include <cmath>
#include <concepts>

#include "ouro/backend/ops.hpp"
#include "ouro/core/error.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/diffusion/sampler.hpp"

namespace ouro::diffusion {

template <denoiser Base, denoiser Aux = Base>
requires std::same_as<backend_of_t<Base>, backend_of_t<Aux>>
class negative_guidance {
public:
    using backend_type = backend_of_t<Base>;  // both models' (the combination runs there)

    // ω >= 0; 0 is the base model alone. The models are borrowed: they must outlive this object.
    negative_guidance(Base& base, Aux& aux, double omega) : base_(base), aux_(aux), omega_(omega) {
        require(std::isfinite(omega) && omega >= 0, "negative_guidance: expected a finite weight omega >= 0, found ",
                omega);
    }

    double omega() const { return omega_; }

    // x_t (B, C, H, W), t (B), y (B) or (0) -> (B, C, H, W), valid until the next call.
    tensor_view<const float, backend_type> predict(tensor_view<const float, backend_type> x_t,
                                                   tensor_view<const std::int64_t> t,
                                                   tensor_view<const std::int64_t> y) {
        const tensor_view<const float, backend_type> b = base_.predict(x_t, t, y);
        require_shape(b.dims(), x_t.dims(), "negative_guidance: base model output");
        out_.resize(b.dims());
        copy(b, out_.view());  // the aux model may reuse the base's buffers
        const tensor_view<const float, backend_type> a = aux_.predict(x_t, t, y);
        require_shape(a.dims(), x_t.dims(), "negative_guidance: auxiliary model output");
        ops<backend_type>::template extrapolate_away<float>(a, out_.view(), static_cast<float>(omega_));
        return out_.view();
    }

private:
    Base& base_;
    Aux& aux_;
    double omega_;
    tensor<float, backend_type> out_;
};

}  // namespace ouro::diffusion
