// The list of methods an experiment compares (loop::self_consuming's fourth template argument):
// the paper's seven, and the control arms.
#pragma once

#include <array>
#include <cstddef>
#include <tuple>

#include "ouro/loop/modes.hpp"

namespace ouro::loop {

// The methods an experiment compares, in report order.
template <loop_mode... Modes>
struct methods {
    static constexpr std::size_t count = sizeof...(Modes);
    using tuple = std::tuple<Modes...>;
};

// The paper's comparison (Cai et al., §5): SYN, SYN-ADD, ACU, ACUR, ACUR-SIMS, ACUR-SC and ACU-LSF.
using paper_methods = methods<syn, syn_add, acu, acur, acur_sims, acur_sc, acu_lsf>;
// ... and the control arms: REAL (fine-tuning on D_r alone) tells the fine-tuning recipe's effect
// on a model apart from self-consumption's; REAL-EMA and ACU-EMA do the same under the EMA-and-
// warm-up recipe; ACU-LSF-CB is ACU-LSF with every class given an equal share of N; ACU-LSF-TS is
// ACU-LSF sampling S_k in T_{k-1}'s label shares. (New arms go last: a method's position keys its
// random streams, so the others' results stay the same.)
using paper_methods_and_controls =
    methods<syn, syn_add, acu, acur, acur_sims, acur_sc, acu_lsf, real_only, real_ema, acu_ema, acu_lsf_cb, acu_lsf_ts>;

// The names of a method list, in order: method_names_of(paper_methods{}).
template <loop_mode... Modes>
constexpr std::array<const char*, sizeof...(Modes)> method_names_of(methods<Modes...>) {
    return {Modes::name...};
}

}  // namespace ouro::loop
