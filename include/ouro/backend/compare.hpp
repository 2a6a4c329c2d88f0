// Op-by-op comparison of two backends (issue #14): every op of the facade run on backend A and on
// backend B from the same pseudo-random host inputs, each output compared with a tolerance of its
// op. It follows the idea of ggml's test-backend-ops (one case per op, run on every backend, a
// normalised mean squared error against a tolerance per op); no code is taken from it.
//
//   #include "ouro/backend/compare.hpp"
//   #include "ouro/backend/cpu/ops.hpp"      // and the other backend's ops
//   const auto reports = ouro::backend_compare::compare_ops<ouro::cpu, my_backend>();
//   std::fputs(ouro::backend_compare::format(reports).c_str(), stdout);   // one line per output
//
// A is the reference. A new op, or one op at other sizes, is one more generic case run through
// compare_case<A, B>(name, shapes, body) (see the cases in compare_ops).
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <initializer_list>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "ouro/backend/adamw_update.hpp"
#include "ouro/backend/op_params.hpp"
#include "ouro/backend/ops.hpp"
#include "ouro/core/backend.hpp"
#include "ouro/core/fnv1a.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"

namespace ouro::backend_compare {

// One output of one op on both backends: op is "case:output" (a case is an op, "/variant" when
// an op has several), shapes the case's inputs and the output's shape.
struct op_report {
    std::string op;
    std::string shapes;
    std::int64_t elements = 0;
    double nmse = 0;     // Σ (a − b)² / Σ a², in double (a: the reference's output)
    double max_abs = 0;  // max |a − b|
    double tolerance = 0;
    bool bitwise = false;  // every element identical, bit for bit

    bool passed() const { return bitwise || nmse <= tolerance; }
};

// The tolerances on the NMSE the cases use; each case says which one an output gets and why.
namespace tolerances {
// Data movement, selection and single correctly rounded IEEE operations (+, ×): the same bits on
// every conforming backend.
inline constexpr double exact = 0;
// A few float operations per element (exp, log, sqrt, sin, cos, fused multiply-adds): a backend's
// own functions and contractions move the last bit or two, NMSE about (2⁻²⁴)² ≈ 4e-15.
inline constexpr double pointwise = 1e-12;
// Sums of tens to hundreds of float terms (statistics, bias gradients, loss values) in another
// order: a few units in the last place of each sum.
inline constexpr double reduction = 1e-9;
// Products through a GEMM (linear, convolution, attention), blocked as each backend chooses:
// ggml's default tolerance.
inline constexpr double gemm = 1e-7;
}  // namespace tolerances

template <class T>
concept comparable_element = std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, std::int64_t>;

// a (the reference's output) against b under `op`. nmse = Σ (a − b)² / Σ a² over the elements,
// in double (ggml's normalised mean squared error); an all-zero reference has no scale, so there
// the denominator is the element count (the mean squared error). Elements equal in value,
// or both NaN, contribute nothing; a NaN or infinity against anything else makes nmse NaN or
// infinite, and the report fails. Outputs of different lengths fail with nmse = ∞.
template <comparable_element T>
op_report compare_outputs(std::string op, const std::vector<T>& a, const std::vector<T>& b, double tolerance,
                          std::string shapes = {}) {
    op_report r{.op = std::move(op),
                .shapes = std::move(shapes),
                .elements = static_cast<std::int64_t>(a.size()),
                .tolerance = tolerance};
    if (a.size() != b.size()) {
        r.nmse = r.max_abs = std::numeric_limits<double>::infinity();
        return r;
    }
    r.bitwise = a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
    double error = 0, reference = 0;
    bool nan_gap = false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
        if (std::isfinite(x)) reference += x * x;
        if (x == y || (std::isnan(x) && std::isnan(y))) continue;
        const double gap = std::abs(x - y);  // NaN or ∞ where one side is not finite
        error += gap * gap;
        nan_gap = nan_gap || std::isnan(gap);
        r.max_abs = std::max(r.max_abs, gap);
    }
    if (nan_gap) r.max_abs = std::numeric_limits<double>::quiet_NaN();
    r.nmse = error == 0 ? 0.0 : error / (reference > 0 ? reference : static_cast<double>(a.size()));
    return r;
}

// One line per report: "ok   conv2d_forward/strided:y  2x3x7x5, ... -> 2x5x4x3  nmse 1.2e-15, ...".
inline std::string format(const std::vector<op_report>& reports) {
    std::ostringstream os;
    os << std::setprecision(2);
    for (const op_report& r : reports) {
        os << (r.passed() ? "ok   " : "FAIL ") << std::left << std::setw(48) << r.op << ' ' << r.shapes;
        if (r.bitwise) os << "  bitwise";
        else
            os << "  nmse " << r.nmse << ", max |a - b| " << r.max_abs;
        os << "  (tolerance " << r.tolerance << ")\n";
    }
    return os.str();
}

// "2x3x7x5".
inline std::string extents(const shape& s) {
    std::string out;
    for (int i = 0; i < s.rank(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
    return s.rank() == 0 ? "scalar" : out;
}

// A case's inputs, "2x3x7x5, 5x3x3x3 (stride 2, padding 1)": the shapes part of its reports.
inline std::string describe(std::initializer_list<shape> inputs, std::string_view parameters = {}) {
    std::string out;
    for (const shape& s : inputs) out += (out.empty() ? "" : ", ") + extents(s);
    if (!parameters.empty()) out += " (" + std::string(parameters) + ")";
    return out;
}

// What one case leaves on one backend, on the host.
struct case_output {
    std::string name;
    shape dims;
    double tolerance = 0;
    std::variant<std::vector<float>, std::vector<double>, std::vector<std::int64_t>> values;
};

// The tensors of one case on backend X: inputs copied from host tensors, outputs initialised from
// host tensors (ops accumulate into parameter gradients and update optimiser state in place) and
// read back, in the order they were declared, once the case has run. Declare outputs as named
// locals before the op call, so the order does not rest on the order of argument evaluation.
template <backend X>
class case_io {
public:
    using backend_type = X;

    template <class T>
    tensor_view<const T, X> in(const tensor<T>& host) {
        return place_(host);
    }

    template <class T>
    tensor_view<T, X> out(std::string name, const tensor<T>& initial, double tolerance) {
        const tensor_view<T, X> v = place_(initial);
        reads_.push_back([name = std::move(name), v, tolerance] {
            const tensor<T> host = to_host(tensor_view<const T, X>(v));
            return case_output{name, v.dims(), tolerance, std::vector<T>(host.begin(), host.end())};
        });
        return v;
    }

    // A value the op returns, compared as a one-element output (indices exactly).
    void returned(std::string name, double value, double tolerance) {
        reads_.push_back([name = std::move(name), value, tolerance] {
            return case_output{name, shape{1}, tolerance, std::vector<double>{value}};
        });
    }
    void returned_index(std::string name, std::int64_t value) {
        reads_.push_back([name = std::move(name), value] {
            return case_output{name, shape{1}, tolerances::exact, std::vector<std::int64_t>{value}};
        });
    }

    std::vector<case_output> read_back() const {
        std::vector<case_output> out;
        for (const auto& read : reads_) out.push_back(read());
        return out;
    }

private:
    template <class T>
    tensor_view<T, X> place_(const tensor<T>& host) {
        auto& t = storage_<T>().emplace_back(host.dims());
        copy_from_host(host.view(), t.view());
        return t.view();
    }
    template <class T>
    std::deque<tensor<T, X>>& storage_() {
        if constexpr (std::same_as<T, std::int64_t>) return indices_;
        else
            return reals_;
    }

    // Deques: a tensor keeps its place (and its views stay valid) as others are added.
    std::deque<tensor<float, X>> reals_;
    std::deque<tensor<std::int64_t, X>> indices_;
    std::vector<std::function<case_output()>> reads_;
};

namespace detail {
// A report that fails: a case that threw, or a body whose outputs depend on the backend.
inline op_report failed_case(std::string op, std::string what) {
    return {.op = std::move(op),
            .shapes = std::move(what),
            .nmse = std::numeric_limits<double>::quiet_NaN(),
            .max_abs = std::numeric_limits<double>::quiet_NaN()};
}
}  // namespace detail

// Runs `body`, a generic callable taking case_io<X>& (a lambda []<class X>(case_io<X>& io) {...}),
// on A and on B, and compares each output it declares. `name` and `shapes` name the case in the
// reports ("name:output"). An exception from either backend (a shape it refuses, say) is one
// failing report that carries its message.
template <backend A, backend B, class Body>
std::vector<op_report> compare_case(const std::string& name, const std::string& shapes, Body&& body) {
    std::vector<case_output> a, b;
    try {
        case_io<A> io_a;
        body(io_a);
        a = io_a.read_back();
        case_io<B> io_b;
        body(io_b);
        b = io_b.read_back();
    } catch (const std::exception& e) {
        return {detail::failed_case(name, shapes + ": threw: " + e.what())};
    }
    if (a.size() != b.size())
        return {detail::failed_case(name, shapes + ": outputs declared: " + std::to_string(a.size()) + " on " +
                                              A::name + ", " + std::to_string(b.size()) + " on " + B::name)};
    std::vector<op_report> reports;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const case_output& x = a[i];
        const case_output& y = b[i];
        const std::string op = name + ":" + x.name, where = shapes + " -> " + extents(x.dims);
        if (y.name != x.name || !(y.dims == x.dims) || y.values.index() != x.values.index()) {
            reports.push_back(detail::failed_case(op, where + ": on " + B::name + " output " + std::to_string(i) +
                                                          " is " + y.name + " " + extents(y.dims)));
            continue;
        }
        reports.push_back(std::visit(
            [&](const auto& values) {
                return compare_outputs(op, values, std::get<std::remove_cvref_t<decltype(values)>>(y.values),
                                       x.tolerance, where);
            },
            x.values));
    }
    return reports;
}

// Pseudo-random host data for one case, from splitmix64 (Steele, Lea & Flood, OOPSLA 2014) seeded
// by (seed, case name): every value is a pure function of the two, so adding a case changes no
// other case's data.
class case_data {
public:
    case_data(std::uint64_t seed, std::string_view name) : state_(fnv1a{}.add_word(seed).add_bytes(name).value()) {}

    std::uint64_t bits() {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Uniform on [lo, hi).
    double uniform(double lo, double hi) { return lo + (hi - lo) * static_cast<double>(bits() >> 11) * 0x1.0p-53; }
    tensor<float> uniform(const shape& s, double lo = -1, double hi = 1) {
        tensor<float> t(s);
        for (float& v : t) v = static_cast<float>(uniform(lo, hi));
        return t;
    }
    // Uniform integers in [0, below).
    tensor<std::int64_t> integers(const shape& s, std::int64_t below) {
        tensor<std::int64_t> t(s);
        for (std::int64_t& v : t) v = static_cast<std::int64_t>(bits() % static_cast<std::uint64_t>(below));
        return t;
    }

private:
    std::uint64_t state_;
};

namespace detail {

// softmax of each row of `scores` (rows of `n`), in double: attention probabilities.
inline tensor<float> softmax_rows(const tensor<float>& scores, std::int64_t n) {
    tensor<float> p(scores.dims());
    for (std::int64_t r = 0; r < scores.numel() / n; ++r) {
        double m = -std::numeric_limits<double>::infinity(), sum = 0;
        for (std::int64_t j = 0; j < n; ++j) m = std::max(m, double(scores[r * n + j]));
        for (std::int64_t j = 0; j < n; ++j) sum += std::exp(double(scores[r * n + j]) - m);
        for (std::int64_t j = 0; j < n; ++j)
            p[r * n + j] = static_cast<float>(std::exp(double(scores[r * n + j]) - m) / sum);
    }
    return p;
}

// Group norm's statistics of x (B, C, ...) with G groups, as the forward writes them: mean and
// rstd (B, G), and coefficients (B, C, 2) = (rstd·γ, β − mean·rstd·γ) per (sample, channel).
struct norm_statistics {
    tensor<float> mean, rstd, coefficients;
};
inline norm_statistics group_norm_statistics(const tensor<float>& x, const tensor<float>& gamma,
                                             const tensor<float>& beta, std::int64_t groups, double eps) {
    const std::int64_t b = x.dim(0), c = x.dim(1), cg = c / groups, n = x.numel() / (b * groups);
    norm_statistics s{tensor<float>(shape{b, groups}), tensor<float>(shape{b, groups}), tensor<float>(shape{b, c, 2})};
    for (std::int64_t item = 0; item < b * groups; ++item) {
        double m = 0, var = 0;
        for (std::int64_t i = 0; i < n; ++i) m += x[item * n + i];
        m /= static_cast<double>(n);
        for (std::int64_t i = 0; i < n; ++i) var += (x[item * n + i] - m) * (x[item * n + i] - m);
        const double r = 1.0 / std::sqrt(var / static_cast<double>(n) + eps);
        s.mean[item] = static_cast<float>(m);
        s.rstd[item] = static_cast<float>(r);
        for (std::int64_t k = 0; k < cg; ++k) {
            const std::int64_t ch = item % groups * cg + k, bc = item / groups * c + ch;
            s.coefficients[2 * bc] = static_cast<float>(r * gamma[ch]);
            s.coefficients[2 * bc + 1] = static_cast<float>(beta[ch] - m * r * gamma[ch]);
        }
    }
    return s;
}

// The flat in-plane position of each window's maximum (the first one), as max_pool2d_forward
// returns them for x (B, C, H, W).
inline tensor<std::int64_t> max_pool_indices(const tensor<float>& x, std::int64_t kernel, std::int64_t stride) {
    const shape out = pool2d_output_shape(x.dims(), kernel, stride);
    const std::int64_t h = x.dim(2), w = x.dim(3), ho = out[2], wo = out[3];
    tensor<std::int64_t> idx(out);
    for (std::int64_t plane = 0; plane < out[0] * out[1]; ++plane)
        for (std::int64_t i = 0; i < ho; ++i)
            for (std::int64_t j = 0; j < wo; ++j) {
                std::int64_t best = i * stride * w + j * stride;
                for (std::int64_t u = 0; u < kernel; ++u)
                    for (std::int64_t v = 0; v < kernel; ++v) {
                        const std::int64_t at = (i * stride + u) * w + j * stride + v;
                        if (x[plane * h * w + at] > x[plane * h * w + best]) best = at;
                    }
                idx[(plane * ho + i) * wo + j] = best;
            }
    return idx;
}

}  // namespace detail

// Every public op of the facade (every member of ops<cuda>; both overloads where an op has two),
// run on A and on B through compare_case, one report per output: pointwise ops on odd sizes with a
// SIMD tail, the convolution padded, strided, valid with 17 output channels and 1x1, pooling with
// and without overlapping windows, reductions over several chunks. Inputs a backward takes from
// its forward (attention's probabilities, group norm's statistics, max pooling's indices) are
// computed on the host, so each op is compared on identical inputs. Float tensors throughout.
// Some 40 ms for cpu against cpu_strict on two cores.
template <backend A, backend B>
std::vector<op_report> compare_ops(std::uint64_t seed = 1) {
    namespace tol = tolerances;
    using f32 = tensor<float>;
    std::vector<op_report> reports;
    auto run = [&](const std::string& name, const std::string& shapes, auto&& body) {
        std::vector<op_report> r = compare_case<A, B>(name, shapes, body);
        reports.insert(reports.end(), r.begin(), r.end());
    };

    // ---- Activations and elementwise arithmetic ----
    const shape map{2, 3, 5, 7};  // 210 elements: whole SIMD vectors and a tail
    {
        case_data r(seed, "silu");
        const f32 x = r.uniform(map, -6, 6), dy = r.uniform(map), y0 = r.uniform(map), dx0 = r.uniform(map);
        run("silu_forward", describe({map}), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::pointwise);  // the backend's exp
            ops<X>::template silu_forward<float>(io.in(x), y);
        });
        run("silu_backward", describe({map, map}), [&]<class X>(case_io<X>& io) {
            const auto dx = io.out("dx", dx0, tol::pointwise);  // the backend's exp
            ops<X>::template silu_backward<float>(io.in(x), io.in(dy), dx);
        });
    }
    {
        case_data r(seed, "relu");
        const f32 x = r.uniform(map), dy = r.uniform(map), y0 = r.uniform(map), dx0 = r.uniform(map);
        f32 y = x;  // the forward's output, half of it exact zeros (the subgradient's case)
        for (float& v : y) v = std::max(v, 0.0f);
        run("relu_forward", describe({map}), [&]<class X>(case_io<X>& io) {
            const auto out = io.out("y", y0, tol::exact);  // a selection
            ops<X>::template relu_forward<float>(io.in(x), out);
        });
        run("relu_backward", describe({map, map}), [&]<class X>(case_io<X>& io) {
            const auto dx = io.out("dx", dx0, tol::exact);  // a selection
            ops<X>::template relu_backward<float>(io.in(y), io.in(dy), dx);
        });
    }
    {
        case_data r(seed, "elementwise");
        const shape bc{2, 3};
        const f32 a = r.uniform(map), b = r.uniform(map), v = r.uniform(bc), y0 = r.uniform(map), s0 = r.uniform(bc);
        run("elementwise_add", describe({map, map}), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::exact);  // one rounded addition
            ops<X>::template elementwise_add<float>(io.in(a), io.in(b), y);
        });
        run("accumulate", describe({map}), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::exact);  // one rounded addition
            ops<X>::template accumulate<float>(io.in(a), y);
        });
        run("add_per_channel", describe({map, bc}), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::exact);  // one rounded addition
            ops<X>::template add_per_channel<float>(io.in(a), io.in(v), y);
        });
        run("sum_per_channel", describe({map}), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", s0, tol::reduction);  // sums of 35 terms
            ops<X>::template sum_per_channel<float>(io.in(a), y);
        });
    }

    // ---- The linear layer and self-attention ----
    {
        case_data r(seed, "linear");
        const shape xs{5, 37}, ws{11, 37}, bs{11}, ys{5, 11};
        const f32 x = r.uniform(xs), w = r.uniform(ws), b = r.uniform(bs), dy = r.uniform(ys);
        const f32 y0 = r.uniform(ys), dx0 = r.uniform(xs), dw0 = r.uniform(ws), db0 = r.uniform(bs);
        run("linear_forward", describe({xs, ws, bs}), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::gemm);
            ops<X>::template linear_forward<float>(io.in(x), io.in(w), io.in(b), y);
        });
        run("linear_backward", describe({xs, ys, ws}), [&]<class X>(case_io<X>& io) {
            const auto dx = io.out("dx", dx0, tol::gemm);
            const auto dw = io.out("dw", dw0, tol::gemm);       // accumulated
            const auto db = io.out("db", db0, tol::reduction);  // accumulated column sums
            ops<X>::template linear_backward<float>(io.in(x), io.in(dy), io.in(w), dx, dw, db);
        });
    }
    {
        case_data r(seed, "attention");
        const std::int64_t heads = 2;
        const shape qkvs{2, 18, 15}, outs{2, 6, 15}, ps{2, heads, 15, 15};  // C = 6, d = 3, L = 15 (a 3x5 map)
        const f32 qkv = r.uniform(qkvs, -2, 2), dout = r.uniform(outs),
                  probs = detail::softmax_rows(r.uniform(ps, -2, 2), 15);
        const f32 out0 = r.uniform(outs), p0 = r.uniform(ps), dqkv0 = r.uniform(qkvs);
        run("attention_forward", describe({qkvs}, "2 heads"), [&]<class X>(case_io<X>& io) {
            const auto out = io.out("out", out0, tol::gemm);
            const auto p = io.out("probs", p0, tol::gemm);  // a GEMM, then the backend's exp
            ops<X>::template attention_forward<float>(io.in(qkv), out, p, heads);
        });
        run("attention_backward", describe({qkvs, ps, outs}), [&]<class X>(case_io<X>& io) {
            const auto dqkv = io.out("dqkv", dqkv0, tol::gemm);
            ops<X>::template attention_backward<float>(io.in(qkv), io.in(probs), io.in(dout), dqkv);
        });
    }

    // ---- Convolution: the U-Net's padded 3x3, a strided one, a valid 2x2 with 17 output channels
    // (wider than a register tile) and a 1x1 ----
    struct conv_case {
        const char* name;
        std::int64_t cout, k;
        conv2d_params params;
    };
    for (const conv_case c : {conv_case{"padded", 4, 3, {1, 1}}, conv_case{"strided", 5, 3, {2, 1}},
                              conv_case{"valid", 17, 2, {1, 0}}, conv_case{"1x1", 6, 1, {1, 0}}}) {
        case_data r(seed, std::string("conv2d/") + c.name);
        const shape xs{2, 3, 7, 5}, ws{c.cout, 3, c.k, c.k}, bs{c.cout};
        const shape ys = conv2d_output_shape(xs, ws, c.params);
        const f32 x = r.uniform(xs), w = r.uniform(ws), b = r.uniform(bs), dy = r.uniform(ys);
        const f32 y0 = r.uniform(ys), dx0 = r.uniform(xs), dw0 = r.uniform(ws), db0 = r.uniform(bs);
        const std::string params =
            "stride " + std::to_string(c.params.stride) + ", padding " + std::to_string(c.params.padding);
        const conv2d_params p = c.params;
        run(std::string("conv2d_forward/") + c.name, describe({xs, ws, bs}, params), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::gemm);
            ops<X>::template conv2d_forward<float>(io.in(x), io.in(w), io.in(b), y, p);
        });
        run(std::string("conv2d_backward_input/") + c.name, describe({ys, ws}, params), [&]<class X>(case_io<X>& io) {
            const auto dx = io.out("dx", dx0, tol::gemm);
            ops<X>::template conv2d_backward_input<float>(io.in(dy), io.in(w), dx, p);
        });
        run(std::string("conv2d_backward_weight/") + c.name, describe({xs, ys}, params), [&]<class X>(case_io<X>& io) {
            const auto dw = io.out("dw", dw0, tol::gemm);       // accumulated
            const auto db = io.out("db", db0, tol::reduction);  // accumulated sums over the batch's pixels
            ops<X>::template conv2d_backward_weight<float>(io.in(x), io.in(dy), dw, db, p);
        });
    }

    // ---- Group normalisation, plain and fused with SiLU ----
    {
        case_data r(seed, "group_norm");
        const std::int64_t groups = 3;
        const double eps = 1e-5;
        const shape xs{2, 6, 5, 3}, cs{6}, gs{2, groups}, coefs{2, 6, 2};
        const f32 x = r.uniform(xs, -0.5, 2.5), dy = r.uniform(xs), gamma = r.uniform(cs, 0.5, 1.5),
                  beta = r.uniform(cs, -0.5, 0.5);
        const f32 y0 = r.uniform(xs), mean0 = r.uniform(gs), rstd0 = r.uniform(gs), coef0 = r.uniform(coefs);
        const f32 dx0 = r.uniform(xs), dgamma0 = r.uniform(cs), dbeta0 = r.uniform(cs);
        const detail::norm_statistics s = detail::group_norm_statistics(x, gamma, beta, groups, eps);
        const std::string g3 = "3 groups";
        // Statistics are sums over the group's 30 elements; y, dx and the parameter gradients follow them.
        run("group_norm_forward", describe({xs, cs, cs}, g3), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::reduction);
            const auto mean = io.out("mean", mean0, tol::reduction);
            const auto rstd = io.out("rstd", rstd0, tol::reduction);
            ops<X>::template group_norm_forward<float>(io.in(x), io.in(gamma), io.in(beta), y, mean, rstd, groups, eps);
        });
        run("group_norm_silu_forward", describe({xs, cs, cs}, g3), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::reduction);
            ops<X>::template group_norm_silu_forward<float>(io.in(x), io.in(gamma), io.in(beta), y, groups, eps);
        });
        run("group_norm_silu_forward/training", describe({xs, cs, cs}, g3), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::reduction);
            const auto mean = io.out("mean", mean0, tol::reduction);
            const auto rstd = io.out("rstd", rstd0, tol::reduction);
            const auto coefficients = io.out("coefficients", coef0, tol::reduction);
            ops<X>::template group_norm_silu_forward<float>(io.in(x), io.in(gamma), io.in(beta), y, mean, rstd,
                                                            coefficients, groups, eps);
        });
        run("group_norm_backward", describe({xs, xs, cs, gs, gs}), [&]<class X>(case_io<X>& io) {
            const auto dx = io.out("dx", dx0, tol::reduction);
            const auto dgamma = io.out("dgamma", dgamma0, tol::reduction);  // accumulated
            const auto dbeta = io.out("dbeta", dbeta0, tol::reduction);     // accumulated
            ops<X>::template group_norm_backward<float>(io.in(x), io.in(dy), io.in(gamma), io.in(s.mean), io.in(s.rstd),
                                                        dx, dgamma, dbeta);
        });
        run("group_norm_silu_backward", describe({xs, xs, cs, gs, gs, coefs}), [&]<class X>(case_io<X>& io) {
            const auto dx = io.out("dx", dx0, tol::reduction);
            const auto dgamma = io.out("dgamma", dgamma0, tol::reduction);  // accumulated
            const auto dbeta = io.out("dbeta", dbeta0, tol::reduction);     // accumulated
            ops<X>::template group_norm_silu_backward<float>(io.in(x), io.in(dy), io.in(gamma), io.in(s.mean),
                                                             io.in(s.rstd), io.in(s.coefficients), dx, dgamma, dbeta);
        });
    }

    // ---- Losses: the returned value and the gradient ----
    {
        case_data r(seed, "mse_loss");
        const shape ps{3, 5, 7};
        const f32 pred = r.uniform(ps), target = r.uniform(ps), d0 = r.uniform(ps);
        run("mse_loss", describe({ps, ps}), [&]<class X>(case_io<X>& io) {
            const auto dpred = io.out("dpred", d0, tol::exact);  // a rounded difference times 2/n
            io.returned("value", ops<X>::template mse_loss<float>(io.in(pred), io.in(target), dpred),
                        tol::reduction);  // float lanes summed in another order
        });
    }
    {
        case_data r(seed, "softmax_cross_entropy");
        const shape ls{5, 7}, ns{5};
        const f32 logits = r.uniform(ls, -3, 3), d0 = r.uniform(ls);
        const tensor<std::int64_t> labels = r.integers(ns, 7);
        run("softmax_cross_entropy", describe({ls, ns}), [&]<class X>(case_io<X>& io) {
            const auto dlogits = io.out("dlogits", d0, tol::pointwise);  // the backend's exp and log, in double
            io.returned("value", ops<X>::template softmax_cross_entropy<float>(io.in(logits), io.in(labels), dlogits),
                        tol::pointwise);  // likewise, rows summed in double
        });
    }

    // ---- Resampling, concatenation and pooling ----
    {
        case_data r(seed, "upsample_nearest2x");
        const shape small{2, 3, 5, 7}, big{2, 3, 10, 14};
        const f32 x = r.uniform(small), dy = r.uniform(big), y0 = r.uniform(big), dx0 = r.uniform(small);
        run("upsample_nearest2x_forward", describe({small}), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::exact);  // copies
            ops<X>::template upsample_nearest2x_forward<float>(io.in(x), y);
        });
        run("upsample_nearest2x_backward", describe({big}), [&]<class X>(case_io<X>& io) {
            const auto dx = io.out("dx", dx0, tol::pointwise);  // sums of four, in the backend's order
            ops<X>::template upsample_nearest2x_backward<float>(io.in(dy), dx);
        });
    }
    {
        case_data r(seed, "concat_channels");
        const shape as{2, 3, 5, 7}, bs{2, 2, 5, 7}, ys{2, 5, 5, 7};
        const f32 a = r.uniform(as), b = r.uniform(bs), dy = r.uniform(ys), y0 = r.uniform(ys), da0 = r.uniform(as),
                  db0 = r.uniform(bs);
        run("concat_channels_forward", describe({as, bs}), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::exact);  // copies
            ops<X>::template concat_channels_forward<float>(io.in(a), io.in(b), y);
        });
        run("concat_channels_backward", describe({ys}), [&]<class X>(case_io<X>& io) {
            const auto da = io.out("da", da0, tol::exact);  // copies
            const auto db = io.out("db", db0, tol::exact);
            ops<X>::template concat_channels_backward<float>(io.in(dy), da, db);
        });
    }
    struct pool_case {
        const char* suffix;
        std::int64_t kernel, stride;
    };
    for (const pool_case c : {pool_case{"", 2, 2}, pool_case{"/overlapping", 3, 2}}) {
        case_data r(seed, std::string("pool2d") + c.suffix);
        const shape xs{2, 3, 7, 5}, ys = pool2d_output_shape(xs, c.kernel, c.stride);
        const f32 x = r.uniform(xs), dy = r.uniform(ys), y0 = r.uniform(ys), dx0 = r.uniform(xs);
        const tensor<std::int64_t> indices = detail::max_pool_indices(x, c.kernel, c.stride);
        const tensor<std::int64_t> i0(ys, -1);
        const std::int64_t k = c.kernel, s = c.stride;
        const std::string params = "kernel " + std::to_string(k) + ", stride " + std::to_string(s);
        run(std::string("avg_pool2d_forward") + c.suffix, describe({xs}, params), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::pointwise);  // a window's sum, then a division
            ops<X>::template avg_pool2d_forward<float>(io.in(x), y, k, s);
        });
        run(std::string("avg_pool2d_backward") + c.suffix, describe({ys}, params), [&]<class X>(case_io<X>& io) {
            const auto dx = io.out("dx", dx0, tol::pointwise);  // shares of overlapping windows added up
            ops<X>::template avg_pool2d_backward<float>(io.in(dy), dx, k, s);
        });
        run(std::string("max_pool2d_forward") + c.suffix, describe({xs}, params), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::exact);  // a selection
            const auto idx = io.out("indices", i0, tol::exact);
            ops<X>::template max_pool2d_forward<float>(io.in(x), y, idx, k, s);
        });
        run(std::string("max_pool2d_backward") + c.suffix, describe({ys, ys}, params), [&]<class X>(case_io<X>& io) {
            const auto dx = io.out("dx", dx0, tol::pointwise);  // overlapping windows' gradients added up
            ops<X>::template max_pool2d_backward<float>(io.in(dy), io.in(indices), dx, k, s);
        });
    }

    // ---- Dropout: the same Philox draws on every backend, over two streams of 2^14 elements ----
    {
        case_data r(seed, "dropout");
        const shape xs{2, 3, 67, 43};  // 17286 elements
        const f32 x = r.uniform(xs), y0 = r.uniform(xs), m0 = r.uniform(xs);
        const double p = 0.3;
        const std::uint64_t dseed = r.bits(), step = 7, salt = 3;
        const std::string params = "p 0.3";
        // y = x · mask: one rounded multiplication by 0 or 1/(1 − p).
        run("dropout_forward", describe({xs}, params), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::exact);
            const auto mask = io.out("mask", m0, tol::exact);
            ops<X>::template dropout_forward<float>(io.in(x), y, mask, p, dseed, step, salt);
        });
        run("dropout_forward/without_mask", describe({xs}, params), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::exact);
            ops<X>::template dropout_forward<float>(io.in(x), y, p, dseed, step, salt);
        });
        run("dropout_backward", describe({xs}, params), [&]<class X>(case_io<X>& io) {
            const auto dx = io.out("dx", y0, tol::exact);
            ops<X>::template dropout_backward<float>(io.in(x), dx, p, dseed, step, salt);
        });
    }

    // ---- Embeddings ----
    {
        case_data r(seed, "sinusoidal_timestep_embedding");
        const shape ts{5}, ys{5, 9};  // an odd dim: the last column is zero
        const f32 t = r.uniform(ts, 0, 1000), dy = r.uniform(ys), y0 = r.uniform(ys), dt0 = r.uniform(ts);
        const double max_period = 10000.0;
        run("sinusoidal_timestep_embedding", describe({ts}, "dim 9"), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::pointwise);  // the backend's cos and sin, in double
            ops<X>::template sinusoidal_timestep_embedding<float>(io.in(t), y, max_period);
        });
        run("sinusoidal_timestep_embedding_backward", describe({ts, ys}), [&]<class X>(case_io<X>& io) {
            const auto dt = io.out("dt", dt0, tol::pointwise);  // likewise, four terms summed in double
            ops<X>::template sinusoidal_timestep_embedding_backward<float>(io.in(t), io.in(dy), dt, max_period);
        });
    }
    {
        case_data r(seed, "label_embedding");
        const shape ls{7}, table_s{5, 6}, ys{7, 6};  // 7 labels of 5 classes: some repeat
        const tensor<std::int64_t> labels = r.integers(ls, 5);
        const f32 table = r.uniform(table_s), dy = r.uniform(ys), y0 = r.uniform(ys), dt0 = r.uniform(table_s);
        run("label_embedding_forward", describe({ls, table_s}), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", y0, tol::exact);  // copies
            ops<X>::template label_embedding_forward<float>(io.in(labels), io.in(table), y);
        });
        run("label_embedding_backward", describe({ls, ys}), [&]<class X>(case_io<X>& io) {
            const auto dtable = io.out("dtable", dt0, tol::pointwise);  // repeated labels' rows added up
            ops<X>::template label_embedding_backward<float>(io.in(labels), io.in(dy), dtable);
        });
    }

    // ---- The optimisers' passes, in place on flat buffers ----
    {
        case_data r(seed, "update");
        const shape fs{105};
        const f32 p = r.uniform(fs), m = r.uniform(fs, -0.1, 0.1), v = r.uniform(fs, 1e-4, 1e-2), g = r.uniform(fs),
                  q = r.uniform(fs);
        const auto scalars = optim::adamw_scalars_for<float>(1e-2, 0.9, 0.999, 1e-8, 0.05, 3);
        // Each pass is a few multiply-adds (which a backend may fuse); AdamW adds a sqrt and a division.
        run("adamw_step", describe({fs}, "step 3"), [&]<class X>(case_io<X>& io) {
            const auto pv = io.out("p", p, tol::pointwise);
            const auto mv = io.out("m", m, tol::pointwise);
            const auto vv = io.out("v", v, tol::pointwise);
            ops<X>::template adamw_step<float>(pv, mv, vv, io.in(g), scalars);
        });
        run("sgd_step", describe({fs}), [&]<class X>(case_io<X>& io) {
            const auto pv = io.out("p", p, tol::pointwise);
            const auto momentum = io.out("momentum", m, tol::pointwise);
            ops<X>::template sgd_step<float>(pv, momentum, io.in(g), 0.1f, 0.9f, 0.01f);
        });
        run("ema_blend", describe({fs}), [&]<class X>(case_io<X>& io) {
            const auto avg = io.out("avg", p, tol::pointwise);
            ops<X>::template ema_blend<float>(avg, io.in(q), 0.1f);
        });
        run("swap_contents", describe({fs, fs}), [&]<class X>(case_io<X>& io) {
            const auto a = io.out("a", p, tol::exact);  // copies
            const auto b = io.out("b", q, tol::exact);
            ops<X>::template swap_contents<float>(a, b);
        });
        run("scale", describe({fs}), [&]<class X>(case_io<X>& io) {
            const auto x = io.out("x", p, tol::exact);  // one rounded multiplication
            ops<X>::template scale<float>(x, 0.7f);
        });
        run("extrapolate_away", describe({fs, fs}), [&]<class X>(case_io<X>& io) {
            const auto y = io.out("y", p, tol::pointwise);
            ops<X>::template extrapolate_away<float>(io.in(q), y, 0.7f);
        });
    }
    {
        case_data r(seed, "reductions");
        const shape fs{9001};  // three chunks of 4096
        const f32 x = r.uniform(fs);
        f32 bad = x;
        bad[4321] = std::numeric_limits<float>::infinity();
        bad[7000] = std::numeric_limits<float>::quiet_NaN();
        run("sum_of_squares", describe({fs}), [&]<class X>(case_io<X>& io) {
            // Squares summed in double in the CPU's fixed order; a backend may fuse the multiply-adds.
            io.returned("value", ops<X>::template sum_of_squares<float>(io.in(x)), tol::pointwise);
        });
        run("first_non_finite", describe({fs}, "inf at 4321, NaN at 7000"), [&]<class X>(case_io<X>& io) {
            io.returned_index("index", ops<X>::template first_non_finite<float>(io.in(bad)));
        });
        run("first_non_finite/finite", describe({fs}), [&]<class X>(case_io<X>& io) {
            io.returned_index("index", ops<X>::template first_non_finite<float>(io.in(x)));
        });
    }
    return reports;
}

}  // namespace ouro::backend_compare
