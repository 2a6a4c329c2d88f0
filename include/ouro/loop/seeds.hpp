// Summaries over seeds: an experiment run once per seed into <out>/seed_<s>/ is read back from each
// run's metrics.csv, and every metric of every (method, generation) is summarised by its mean, sample
// standard deviation and 95% Student-t interval, beside per-seed paired differences between methods
// (the methods of one seed share G0 and its noise, so a - b per seed cancels what the seed shares).
// Written as summary.csv, paired_differences.csv, plots/summary_<metric>.svg and summary.md.
#pragma once

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/io/atomic_file.hpp"
#include "ouro/io/svg.hpp"

namespace ouro::loop {

// ---- seed lists ---------------------------------------------------------------------------------

inline constexpr std::size_t max_seeds = 1000;

namespace seeds_detail {
inline std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    for (std::size_t start = 0;;) {
        const std::size_t end = std::min(text.find(separator, start), text.size());
        parts.push_back(text.substr(start, end - start));
        if (end == text.size()) return parts;
        start = end + 1;
    }
}
}  // namespace seeds_detail

// The seeds of a list such as "1-5", "1,3,7" or "1-3,8,10-11", in the order written ("a-a" is one
// seed). Requires parts of digits only (no signs, no spaces) that fit 64 bits, ascending ranges,
// no seed twice and at most max_seeds seeds; otherwise an ouro::error names the text and the part.
inline std::vector<std::uint64_t> parse_seed_list(std::string_view text) {
    constexpr const char* example = "; expected e.g. 1-5, 1,3,7 or 1-3,8,10-11";
    if (text.empty()) fail("seed list '': expected at least one seed", example);
    std::vector<std::uint64_t> seeds;
    std::set<std::uint64_t> seen;
    const auto parts = seeds_detail::split(text, ',');
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const std::string_view part = parts[i];
        const std::size_t part_no = i + 1;
        // One bound of the part: digits only, within 64 bits.
        const auto bound = [&](std::string_view digits) {
            if (part.find('+') != std::string_view::npos || digits.starts_with('-'))
                fail("seed list '", text, "': part ", part_no, " ('", part, "') has a sign", example);
            const auto digit = [](char c) { return c >= '0' && c <= '9'; };
            if (digits.empty() || !std::all_of(digits.begin(), digits.end(), digit))
                fail("seed list '", text, "': part ", part_no, " ('", part, "'): expected digits, found '", digits, "'",
                     example);
            std::uint64_t v = 0;
            if (std::from_chars(digits.data(), digits.data() + digits.size(), v).ec == std::errc::result_out_of_range)
                fail("seed list '", text, "': part ", part_no, " ('", part, "'): ", digits, " does not fit 64 bits");
            return v;
        };
        if (part.empty()) fail("seed list '", text, "': part ", part_no, " is empty", example);
        const std::size_t dash = part.find('-', 1);  // a leading '-' is a sign, not a range
        const std::uint64_t lo = bound(part.substr(0, dash));
        const std::uint64_t hi = dash == std::string_view::npos ? lo : bound(part.substr(dash + 1));
        if (hi < lo) fail("seed list '", text, "': part ", part_no, " ('", part, "') is a descending range");
        if (hi - lo >= max_seeds - seeds.size())
            fail("seed list '", text, "': expected at most ", max_seeds, " seeds, found more by part ", part_no, " ('",
                 part, "')");
        for (std::uint64_t s = lo;; ++s) {
            if (!seen.insert(s).second)
                fail("seed list '", text, "': seed ", s, " appears twice (again in part ", part_no, ")");
            seeds.push_back(s);
            if (s == hi) break;  // not `s <= hi` in the loop head: hi may be the largest uint64
        }
    }
    return seeds;
}

// ---- one run's metrics.csv ----------------------------------------------------------------------

// A run's metrics.csv read by column name: every column but method, generation and seconds is a
// metric, so columns added later are summarised without a change here.
struct metrics_file {
    struct row {
        std::string method;
        std::int64_t generation = 0;
        std::vector<double> values;  // one per metric; NaN where the file says nan
    };
    std::string source;                // the file it came from, for messages
    std::vector<std::string> metrics;  // metric columns, in file order
    std::vector<row> rows;
};

// Parses `text` (the contents of `source`). Requires a header of distinct names of letters, digits
// and '_' with method and generation among them, and lines of as many fields: a non-empty method,
// a generation >= 0, numbers or nan, each (method, generation) once. Errors name source:line and
// the column.
inline metrics_file parse_metrics_csv(std::string_view text, std::string source) {
    metrics_file t;
    t.source = std::move(source);
    const std::string& src = t.source;
    using seeds_detail::split;
    auto lines = split(text, '\n');
    if (lines.back().empty()) lines.pop_back();  // the last line's end
    for (auto& line : lines)
        if (line.ends_with('\r')) line.remove_suffix(1);
    if (lines.empty() || lines[0].empty()) fail(src, ":1: expected a header line naming the columns, found none");
    const auto header = split(lines[0], ',');
    std::size_t method_col = header.size(), generation_col = header.size();
    std::vector<std::size_t> metric_cols;
    for (std::size_t c = 0; c < header.size(); ++c) {
        const std::string_view name = header[c];
        const auto plain = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
        require(!name.empty() && std::all_of(name.begin(), name.end(), plain), src, ":1, column ", c + 1,
                ": expected a name of letters, digits and '_', found '", name, "'");
        for (std::size_t d = 0; d < c; ++d)
            require(header[d] != name, src, ":1: column '", name, "' appears twice (columns ", d + 1, " and ", c + 1,
                    ")");
        if (name == "method") method_col = c;
        else if (name == "generation")
            generation_col = c;
        else if (name != "seconds")
            metric_cols.push_back(c), t.metrics.emplace_back(name);
    }
    require(method_col < header.size() && generation_col < header.size(), src,
            ":1: expected columns 'method' and 'generation', found header '", lines[0], "'");

    std::map<std::pair<std::string, std::int64_t>, std::size_t> first_line;
    for (std::size_t l = 1; l < lines.size(); ++l) {
        const std::size_t line_no = l + 1;
        const auto fields = split(lines[l], ',');
        require(fields.size() == header.size(), src, ":", line_no, ": expected ", header.size(),
                " fields as in the header, found ", fields.size(), " in '", lines[l], "'");
        metrics_file::row r;
        r.method = std::string(fields[method_col]);
        require(!r.method.empty(), src, ":", line_no, ", column 'method': expected a name, found an empty field");
        const std::string_view g = fields[generation_col];
        const auto gr = std::from_chars(g.data(), g.data() + g.size(), r.generation);
        require(!g.empty() && gr.ec == std::errc() && gr.ptr == g.data() + g.size() && r.generation >= 0, src, ":",
                line_no, ", column 'generation': expected a whole number >= 0, found '", g, "'");
        for (std::size_t k = 0; k < metric_cols.size(); ++k) {
            const std::string_view f = fields[metric_cols[k]];
            double v = 0;
            const auto vr = std::from_chars(f.data(), f.data() + f.size(), v);
            require(!f.empty() && vr.ec == std::errc() && vr.ptr == f.data() + f.size(), src, ":", line_no,
                    ", column '", t.metrics[k], "': expected a number or nan, found '", f, "'");
            r.values.push_back(v);
        }
        const auto [it, fresh] = first_line.try_emplace({r.method, r.generation}, line_no);
        require(fresh, src, ":", line_no, ": a second row for method '", r.method, "' at generation ", r.generation,
                " (the first is on line ", it->second, ")");
        t.rows.push_back(std::move(r));
    }
    return t;
}

inline metrics_file read_metrics_csv(const std::filesystem::path& file) {
    return parse_metrics_csv(io::read_text_file(file), file.string());
}

// ---- statistics ---------------------------------------------------------------------------------

namespace seeds_detail {
// The continued fraction of I_x(a, b) by the modified Lentz method (Numerical Recipes, 3rd ed.,
// §6.4, eq. 6.4.5, betacf). It converges fast for x < (a + 1) / (a + b + 2), in O(sqrt(max(a, b))) steps.
inline double beta_continued_fraction(double a, double b, double x) {
    constexpr double tiny = 1e-300, eps = 1e-16;
    const double qab = a + b, qap = a + 1, qam = a - 1;
    auto guard = [](double v) { return std::abs(v) < tiny ? tiny : v; };
    double c = 1, d = 1 / guard(1 - qab * x / qap), h = d;
    for (int m = 1; m <= 100000; ++m) {
        const double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 / guard(1 + aa * d);
        c = guard(1 + aa / c);
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 / guard(1 + aa * d);
        c = guard(1 + aa / c);
        h *= d * c;
        if (std::abs(d * c - 1) < eps) break;
    }
    return h;
}
}  // namespace seeds_detail

// I_x(a, b), the regularised incomplete beta function (Numerical Recipes, 3rd ed., §6.4, betai).
// Requires a, b > 0 and x in [0, 1].
inline double regularized_incomplete_beta(double a, double b, double x) {
    require(a > 0 && b > 0 && x >= 0 && x <= 1,
            "regularized_incomplete_beta: expected a, b > 0 and x in [0, 1], found a = ", a, ", b = ", b, ", x = ", x);
    if (x == 0 || x == 1) return x;
    const double front =
        std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
    if (x < (a + 1) / (a + b + 2)) return front * seeds_detail::beta_continued_fraction(a, b, x) / a;
    return 1 - front * seeds_detail::beta_continued_fraction(b, a, 1 - x) / b;
}

namespace seeds_detail {
// P(T > t) for t >= 0: I_{df/(df+t²)}(df/2, 1/2) / 2 (Abramowitz & Stegun 26.7.1).
inline double t_upper_tail(double t, double df) {
    return 0.5 * regularized_incomplete_beta(df / 2, 0.5, df / (df + t * t));
}
}  // namespace seeds_detail

// P(T <= t) for Student's t with `df` > 0 degrees of freedom.
inline double student_t_cdf(double t, double df) {
    require(df > 0 && std::isfinite(df) && !std::isnan(t),
            "student_t_cdf: expected df > 0 finite and t not NaN, found df = ", df, ", t = ", t);
    const double tail = seeds_detail::t_upper_tail(std::abs(t), df);
    return t >= 0 ? 1 - tail : tail;
}

// The t with P(T <= t) = p, for 0 < p < 1 and finite df > 0: bisection on the tail (monotone in t),
// which gives full double precision without a derivative.
inline double student_t_quantile(double p, double df) {
    require(p > 0 && p < 1 && df > 0 && std::isfinite(df),
            "student_t_quantile: expected 0 < p < 1 and df > 0 finite, found p = ", p, ", df = ", df);
    const double q = std::min(p, 1 - p);  // the tail beyond |t|
    double lo = 0, hi = 1;
    while (seeds_detail::t_upper_tail(hi, df) > q && hi < 1e300) lo = hi, hi *= 2;
    for (int i = 0; i < 2000; ++i) {
        const double mid = lo + (hi - lo) / 2;
        if (mid <= lo || mid >= hi) break;
        (seeds_detail::t_upper_tail(mid, df) > q ? lo : hi) = mid;
    }
    const double t = lo + (hi - lo) / 2;
    return p < 0.5 ? -t : t;
}

// Mean, sample standard deviation (divisor n - 1) and the 95% two-sided Student-t interval
// mean ± t_{0.975, n-1} · stddev / √n of the finite values of a sample; n counts those.
// n = 0: everything NaN; n = 1: stddev and the interval NaN.
struct mean_interval {
    double mean = NAN, stddev = NAN, ci_low = NAN, ci_high = NAN;
    std::int64_t n = 0;
    double half_width() const { return (ci_high - ci_low) / 2; }
    // Whether the interval lies wholly on one side of 0 (false where there is none).
    bool excludes_zero() const { return ci_low > 0 || ci_high < 0; }
};

inline mean_interval summarise_sample(std::span<const double> values) {
    mean_interval r;
    double sum = 0;
    for (const double v : values)
        if (std::isfinite(v)) sum += v, ++r.n;
    if (r.n == 0) return r;
    r.mean = sum / static_cast<double>(r.n);
    if (r.n == 1) return r;
    double ss = 0;  // two passes: no cancellation between sum of squares and squared sum
    for (const double v : values)
        if (std::isfinite(v)) ss += (v - r.mean) * (v - r.mean);
    r.stddev = std::sqrt(ss / static_cast<double>(r.n - 1));
    const double n = static_cast<double>(r.n);
    const double half = student_t_quantile(0.975, n - 1) * r.stddev / std::sqrt(n);
    r.ci_low = r.mean - half;
    r.ci_high = r.mean + half;
    return r;
}

// ---- summaries over seeds -----------------------------------------------------------------------

struct summary_row {
    std::string method;
    std::int64_t generation = 0;
    std::string metric;
    mean_interval stats;  // over seeds
};

// method_a - method_b, per seed, over the seeds where both are finite.
struct difference_row {
    std::string method_a, method_b;
    std::int64_t generation = 0;
    std::string metric;
    mean_interval stats;
};

struct seed_summary {
    std::vector<std::uint64_t> seeds;
    std::vector<std::string> methods, metrics;  // in order
    std::vector<summary_row> rows;              // by method, generation, metric
    std::vector<difference_row> differences;    // by pair (a before b in `methods`), generation >= 1, metric

    const summary_row* find(std::string_view method, std::int64_t generation, std::string_view metric) const {
        for (const auto& r : rows)
            if (r.method == method && r.generation == generation && r.metric == metric) return &r;
        return nullptr;
    }
    std::int64_t last_generation() const {  // -1 with no rows
        std::int64_t g = -1;
        for (const auto& r : rows) g = std::max(g, r.generation);
        return g;
    }
};

// One seed's run, read back.
struct seed_run {
    std::uint64_t seed = 0;
    metrics_file metrics;
};

// Summarises `runs`. Methods come in `method_order` (empty: in order of first appearance); every
// method of the runs must be in it, and every method in it must have rows in some run. Metrics are
// the union of the runs' columns; a run without a column counts as NaN there. Requires runs of
// distinct seeds.
inline seed_summary summarise_seeds(std::span<const seed_run> runs, std::span<const std::string> method_order) {
    require(!runs.empty(), "summarise_seeds: expected at least one seed's run, found none");
    seed_summary s;
    std::map<std::string, std::size_t, std::less<>> method_index, metric_index;
    for (const auto& m : method_order) {
        require(method_index.emplace(m, s.methods.size()).second, "summarise_seeds: method '", m,
                "' appears twice in the method order");
        s.methods.push_back(m);
    }
    using cell_key = std::pair<std::size_t, std::int64_t>;  // (method, generation)
    std::vector<std::map<cell_key, std::vector<double>>> cells(runs.size());
    for (std::size_t i = 0; i < runs.size(); ++i) {
        const auto& t = runs[i].metrics;
        require(std::find(s.seeds.begin(), s.seeds.end(), runs[i].seed) == s.seeds.end(), "summarise_seeds: seed ",
                runs[i].seed, " appears twice");
        s.seeds.push_back(runs[i].seed);
        std::vector<std::size_t> to_global;
        for (const auto& m : t.metrics) {
            to_global.push_back(metric_index.emplace(m, s.metrics.size()).first->second);
            if (to_global.back() == s.metrics.size()) s.metrics.push_back(m);
        }
        for (const auto& r : t.rows) {
            auto it = method_index.find(r.method);
            if (it == method_index.end()) {
                if (!method_order.empty()) {
                    std::string known;
                    for (const auto& m : s.methods) known += (known.empty() ? "" : ", ") + m;
                    fail(t.source, ": method '", r.method, "' is not among the methods to summarise (", known, ")");
                }
                it = method_index.emplace(r.method, s.methods.size()).first;
                s.methods.push_back(r.method);
            }
            auto& v = cells[i][{it->second, r.generation}];
            v.assign(s.metrics.size(), NAN);  // later runs' new metrics: resized below
            for (std::size_t k = 0; k < r.values.size(); ++k) v[to_global[k]] = r.values[k];
        }
    }
    require(!s.methods.empty(), "summarise_seeds: expected rows of metrics in the seeds' runs, found none in ",
            runs.front().metrics.source, runs.size() > 1 ? " or the others" : "");
    std::vector<std::set<std::int64_t>> generations(s.methods.size());
    for (auto& run : cells)
        for (auto& [key, v] : run) {
            v.resize(s.metrics.size(), NAN);
            generations[key.first].insert(key.second);
        }
    for (std::size_t m = 0; m < s.methods.size(); ++m)
        require(!generations[m].empty(), "summarise_seeds: expected rows for method '", s.methods[m],
                "' in at least one seed, found none");

    // The values of one metric across seeds, NaN where a seed has no such row.
    auto across = [&](std::size_t m, std::int64_t g, std::size_t k) {
        std::vector<double> out;
        for (const auto& run : cells) {
            const auto it = run.find({m, g});
            out.push_back(it == run.end() ? NAN : it->second[k]);
        }
        return out;
    };
    for (std::size_t m = 0; m < s.methods.size(); ++m)
        for (const std::int64_t g : generations[m])
            for (std::size_t k = 0; k < s.metrics.size(); ++k)
                s.rows.push_back({s.methods[m], g, s.metrics[k], summarise_sample(across(m, g, k))});
    for (std::size_t a = 0; a < s.methods.size(); ++a)
        for (std::size_t b = a + 1; b < s.methods.size(); ++b)
            for (const std::int64_t g : generations[a]) {
                if (g < 1 || !generations[b].contains(g)) continue;  // G0 is shared: its difference is 0
                for (std::size_t k = 0; k < s.metrics.size(); ++k) {
                    const auto va = across(a, g, k), vb = across(b, g, k);
                    std::vector<double> d;
                    for (std::size_t i = 0; i < va.size(); ++i) d.push_back(va[i] - vb[i]);  // NaN if either is
                    s.differences.push_back({s.methods[a], s.methods[b], g, s.metrics[k], summarise_sample(d)});
                }
            }
    return s;
}

// ---- files --------------------------------------------------------------------------------------

inline constexpr const char* summary_csv_header = "method,generation,metric,mean,std,ci_low,ci_high,n";
inline constexpr const char* paired_differences_csv_header =
    "method_a,method_b,generation,metric,mean_difference,std,ci_low,ci_high,n";

namespace seeds_detail {
// Six significant digits as metrics.csv has them, or "nan"; locale-independent.
inline std::string number(double v) { return std::isnan(v) ? "nan" : io::svg_detail::number(v, 6); }

inline std::string stats_fields(const mean_interval& s) {
    return number(s.mean) + "," + number(s.stddev) + "," + number(s.ci_low) + "," + number(s.ci_high) + "," +
           std::to_string(s.n);
}

// "mean ± half-width (n)"; "mean (1)" without an interval, "n/a (0)" without values.
inline std::string cell(const mean_interval& s) {
    if (s.n == 0) return "n/a (0)";
    const std::string n = " (" + std::to_string(s.n) + ")";
    return std::isfinite(s.half_width()) ? number(s.mean) + " ± " + number(s.half_width()) + n : number(s.mean) + n;
}
}  // namespace seeds_detail

inline std::string summary_csv(const seed_summary& s) {
    std::string out = std::string(summary_csv_header) + "\n";
    for (const auto& r : s.rows)
        out += r.method + "," + std::to_string(r.generation) + "," + r.metric + "," +
               seeds_detail::stats_fields(r.stats) + "\n";
    return out;
}

inline std::string paired_differences_csv(const seed_summary& s) {
    std::string out = std::string(paired_differences_csv_header) + "\n";
    for (const auto& d : s.differences)
        out += d.method_a + "," + d.method_b + "," + std::to_string(d.generation) + "," + d.metric + "," +
               seeds_detail::stats_fields(d.stats) + "\n";
    return out;
}

// A line per method: the mean of `metric` against generation, with its 95% interval as the band.
inline std::vector<io::series> summary_series(const seed_summary& s, std::string_view metric) {
    std::vector<io::series> out;
    for (const auto& m : s.methods) {
        io::series line{.name = m, .x = {}, .y = {}};
        for (const auto& r : s.rows)
            if (r.method == m && r.metric == metric) {
                line.x.push_back(static_cast<double>(r.generation));
                line.y.push_back(r.stats.mean);
                line.lower.push_back(r.stats.ci_low);
                line.upper.push_back(r.stats.ci_high);
            }
        out.push_back(std::move(line));
    }
    return out;
}

// summary.md: at the last generation, FID, precision and recall per method and the paired
// differences of every pair; then the plots.
inline std::string summary_markdown(const seed_summary& s) {
    using seeds_detail::number;
    static constexpr std::pair<const char*, const char*> headline[] = {
        {"fid", "FID"}, {"precision", "precision"}, {"recall", "recall"}};
    const std::int64_t last = s.last_generation();
    std::string seeds;
    for (const auto v : s.seeds) seeds += (seeds.empty() ? "" : ", ") + std::to_string(v);
    std::string md = "# Summary over " + std::to_string(s.seeds.size()) + " seeds\n\nSeeds: " + seeds +
                     ". A cell is mean ± half-width of the 95% Student-t interval (seeds with a finite value). "
                     "Every row: [summary.csv](summary.csv); differences between methods: "
                     "[paired_differences.csv](paired_differences.csv).\n\n";
    md += "## Generation " + std::to_string(last) + "\n\n| method | FID | precision | recall |\n|---|---|---|---|\n";
    for (const auto& m : s.methods) {
        md += "| " + m + " |";
        for (const auto& [key, title] : headline) {
            const summary_row* r = s.find(m, last, key);
            md += ' ';
            md += r ? seeds_detail::cell(r->stats) : "n/a";
            md += " |";
        }
        md += "\n";
    }
    md += "\n## Paired differences at generation " + std::to_string(last) +
          "\n\na − b computed within each seed (shared G0 and noise), over the seeds where both are finite.\n";
    const bool any_pair = last >= 1 && s.methods.size() >= 2;
    if (!any_pair) md += "\nNone: they need two methods and a generation after G0.\n";
    for (const auto& [key, title] : headline) {
        if (!any_pair) break;
        md += std::string("\n### ") + title +
              "\n\n| a − b | mean difference | 95% interval | n | excludes 0 |\n|---|---|---|---|---|\n";
        for (const auto& d : s.differences) {
            if (d.generation != last || d.metric != key) continue;
            const auto& st = d.stats;
            md += "| " + d.method_a + " − " + d.method_b + " | " + number(st.mean) + " | [" + number(st.ci_low) + ", " +
                  number(st.ci_high) + "] | " + std::to_string(st.n) + " | " +
                  (std::isfinite(st.half_width()) ? (st.excludes_zero() ? "yes" : "no") : "n/a") + " |\n";
        }
    }
    md += "\n## Plots\n\nMean per method with its 95% interval as a band.\n\n";
    for (const auto& k : s.metrics) md += "![" + k + "](plots/summary_" + k + ".svg)\n\n";
    return md;
}

// For the console: at `generation`, a header row of the methods, then a row per metric with a cell
// "mean ± 95% half-width (n)" per method. Requires a generation the summary has.
inline std::string summary_table(const seed_summary& s, std::int64_t generation) {
    const auto display_width = io::svg_detail::text_length;  // "±" is two bytes, one character
    std::vector<std::vector<std::string>> table{{"metric"}};
    for (const auto& m : s.methods) table[0].push_back(m);
    bool found = false;
    for (const auto& k : s.metrics) {
        std::vector<std::string> line{k};
        for (const auto& m : s.methods) {
            const summary_row* r = s.find(m, generation, k);
            found = found || r;
            line.push_back(r ? seeds_detail::cell(r->stats) : "-");
        }
        table.push_back(std::move(line));
    }
    require(found, "summary_table: expected a generation the summary has (the last is ", s.last_generation(),
            "), found ", generation);
    std::vector<std::size_t> widths(table[0].size(), 0);
    for (const auto& line : table)
        for (std::size_t c = 0; c < line.size(); ++c) widths[c] = std::max(widths[c], display_width(line[c]));
    std::string out;
    for (const auto& line : table) {
        for (std::size_t c = 0; c < line.size(); ++c)
            out += line[c] + (c + 1 < line.size() ? std::string(widths[c] - display_width(line[c]) + 2, ' ') : "");
        out += "\n";
    }
    return out;
}

// Reads <out>/seed_<s>/metrics.csv for every seed, then writes into `out` (each file atomically)
// summary.csv, paired_differences.csv, plots/summary_<metric>.svg and summary.md, and returns the
// summary. Everything is read and checked before the first file is written. Requires seeds whose
// runs exist; method_order as for summarise_seeds.
inline seed_summary write_seed_summary(const std::filesystem::path& out, std::span<const std::uint64_t> seeds,
                                       std::span<const std::string> method_order) {
    require(!seeds.empty(), "write_seed_summary: expected at least one seed, found none");
    std::vector<seed_run> runs;
    for (const std::uint64_t seed : seeds) {
        const auto file = out / ("seed_" + std::to_string(seed)) / "metrics.csv";
        require(std::filesystem::is_regular_file(file), file.string(), ": expected the metrics of seed ", seed,
                ", found no such file (has that seed's run finished?)");
        runs.push_back({seed, read_metrics_csv(file)});
    }
    const seed_summary s = summarise_seeds(runs, method_order);
    std::vector<std::pair<std::string, std::string>> plots;  // (metric, svg)
    for (const auto& k : s.metrics) {
        const std::string title = k + ": mean and 95% interval over " + std::to_string(s.seeds.size()) + " seeds";
        plots.emplace_back(
            k, io::line_plot_svg(summary_series(s, k), {.title = title, .x_label = "generation", .y_label = k}));
    }
    io::write_file_atomically(out / "summary.csv", summary_csv(s));
    io::write_file_atomically(out / "paired_differences.csv", paired_differences_csv(s));
    for (const auto& [k, svg] : plots) io::write_file_atomically(out / "plots" / ("summary_" + k + ".svg"), svg);
    io::write_file_atomically(out / "summary.md", summary_markdown(s));  // last: it links the others
    return s;
}

}  // namespace ouro::loop
