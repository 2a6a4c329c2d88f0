// SVG plots for run reports: line plots (a quantity against generation, a line per method) and 2-D
// scatter plots coloured by class, written as plain text with no plotting library behind them.
//
// The output depends only on the input: numbers are formatted with std::to_chars (the C locale's
// "%.6g", whatever the process locale), and nothing is iterated in an unspecified order, so a
// resumed run rewrites byte-identical plots.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/io/atomic_file.hpp"

namespace ouro::io {

// One line of a line plot. A point whose x or y is NaN or infinite is a gap: it is not drawn, it
// does not count towards the axis ranges, and it splits the line in two.
// `lower` and `upper`, when given (both, as long as x), bound a band drawn translucent under the
// line, e.g. a confidence interval; a point whose x, lower or upper is not finite is a gap in the
// band. Empty: no band.
struct series {
    std::string name;
    std::vector<double> x, y;
    // `= {}`: brace initialisers that stop at y, written before bands existed, stay -Wextra clean.
    std::vector<double> lower = {}, upper = {};
};

struct line_plot_options {
    std::string title, x_label, y_label;
    int width = 640, height = 400;  // pixels; each at least 100
    bool integer_x_ticks = true;    // x ticks at whole numbers only (generations, epochs)
};

struct scatter_options {
    std::string title;
    int width = 480, height = 480;  // pixels; each at least 100
    // The data range to show on each axis; when !(min < max) it is fitted to the finite points with
    // a 5% margin. Points outside the shown area are left out.
    double x_min = 0, x_max = 0, y_min = 0, y_max = 0;
    double point_radius = 1.5;             // pixels
    std::vector<std::string> class_names;  // legend entry i names class i; no legend when empty
};

namespace svg_detail {

// Okabe & Ito (2008), "Color Universal Design": eight colours told apart under the common forms of
// colour-vision deficiency. Yellow comes last: it is the hardest to see on white.
inline constexpr const char* palette[] = {"#0072B2", "#D55E00", "#009E73", "#E69F00",
                                          "#56B4E9", "#CC79A7", "#000000", "#F0E442"};
inline constexpr std::size_t palette_size = sizeof(palette) / sizeof(palette[0]);
// Past eight series the colours repeat, so each round of the palette gets its own dash pattern.
inline constexpr const char* dashes[] = {"", "6 3", "2 2", "8 3 2 3"};
inline constexpr std::size_t dashes_size = sizeof(dashes) / sizeof(dashes[0]);

inline constexpr double char_width = 7.0;  // rough advance of one character at font-size 12 sans-serif

// `v` with `precision` significant digits in the shortest of fixed and exponent notation, like
// printf's "%.*g" in the C locale. -0 prints as 0; a non-finite value (never meant to reach here)
// prints as 0 rather than break the file.
inline std::string number(double v, int precision = 6) {
    if (!std::isfinite(v)) return "0";
    v += 0.0;  // -0 + 0 is +0
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, precision);
    return std::string(buf, r.ptr);
}

// Text content made safe for XML: the five special characters become entities, and the control
// characters that XML 1.0 forbids anywhere become spaces.
inline std::string escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') out += ' ';
                else
                    out += c;
        }
    }
    return out;
}

// Characters of UTF-8 text (continuation bytes not counted), for a width estimate.
inline std::size_t text_length(std::string_view text) {
    std::size_t n = 0;
    for (const char c : text)
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
    return n;
}

// Ticks of one axis. `lo`, `hi`: the range the axis shows; `values`: where the ticks are;
// `precision`: significant digits that tell neighbouring ticks apart.
struct axis {
    double lo = 0, hi = 1;
    std::vector<double> values;
    int precision = 6;

    // Position of v in [0, 1] along the axis; halves first, so no difference overflows.
    double fraction(double v) const { return (v * 0.5 - lo * 0.5) / (hi * 0.5 - lo * 0.5); }
    std::string label(double v) const { return number(v, precision); }
};

// Widens an empty or vanishing range [lo, hi] around its value, so it can be divided into ticks.
inline void widen_degenerate(double& lo, double& hi) {
    const double mag = std::max(std::abs(lo), std::abs(hi));
    if (hi * 0.5 - lo * 0.5 > 1e-12 * mag * 0.5) return;
    const double pad = mag > 0 ? 0.1 * mag : 1.0;
    lo -= pad;
    hi += pad;
}

// The 1-2-5 step that divides `span` into about `target` intervals (Heckbert, "Nice numbers for
// graph labels", Graphics Gems, 1990), or 0 where span is not a normal positive number.
inline double nice_step(double half_span, int target, bool integer) {
    const double raw = half_span / std::max(target, 1) * 2.0;
    if (!(raw > 0) || !std::isfinite(raw)) return 0;
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    if (!(mag > 0) || !std::isfinite(mag)) return 0;
    const double f = raw / mag;
    double step = (f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10) * mag;
    if (integer) step = std::max(step, 1.0);
    return std::isfinite(step) ? step : 0;
}

// Ticks of about `target` intervals over the data range [lo, hi]. With `extend`, the axis grows
// to the ticks just outside the data (a line plot); without, it keeps [lo, hi] and only the ticks
// inside are labelled (a scatter plot, whose range the caller fixed).
inline axis make_axis(double lo, double hi, int target, bool integer, bool extend) {
    widen_degenerate(lo, hi);
    axis a;
    a.lo = lo;
    a.hi = hi;
    const double step = nice_step(hi * 0.5 - lo * 0.5, target, integer);
    constexpr double slack = 1e-9;  // a tick a rounding error outside the range still counts
    double k_lo = 0, k_hi = -1;
    if (step > 0) {
        k_lo = extend ? std::floor(lo / step + slack) : std::ceil(lo / step - slack);
        k_hi = extend ? std::ceil(hi / step - slack) : std::floor(hi / step + slack);
    }
    const bool usable = step > 0 && std::isfinite(k_lo * step) && std::isfinite(k_hi * step) && k_hi >= k_lo &&
                        k_hi - k_lo <= 1000 && (!extend || k_hi > k_lo);
    if (!usable) {
        // Ranges near the limits of double: label the two ends and nothing else.
        a.values = {lo, hi};
        return a;
    }
    for (double k = k_lo; k <= k_hi; k += 1) a.values.push_back(k * step);  // k * step: no summed error
    if (extend) {
        a.lo = k_lo * step;
        a.hi = k_hi * step;
    }
    // Enough digits to tell ticks one step apart, e.g. 1000000.2 next to 1000000.4.
    const double mag = std::max(std::abs(a.lo), std::abs(a.hi));
    if (mag > 0) {
        const int digits = static_cast<int>(std::floor(std::log10(mag)) - std::floor(std::log10(step))) + 1;
        a.precision = std::clamp(digits, 6, 17);
    }
    return a;
}

inline std::size_t widest_label(const axis& a) {
    std::size_t w = 0;
    for (const double v : a.values) w = std::max(w, text_length(a.label(v)));
    return w;
}

inline void check_size(int width, int height, const char* what) {
    require(width >= 100 && height >= 100, what, ": expected a width and height of at least 100 pixels, found ", width,
            " x ", height);
}

// Appends each part (strings, string views, C strings) to `out`, with no temporaries between.
template <class... Parts>
requires(std::is_convertible_v<const Parts&, std::string_view>&&...) void put(std::string& out, const Parts&... parts) {
    ((out += parts), ...);
}

inline void open_svg(std::string& out, int width, int height) {
    const std::string w = std::to_string(width), h = std::to_string(height);
    put(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", w, "\" height=\"", h, "\" viewBox=\"0 0 ", w, " ", h,
        "\" font-family=\"sans-serif\" font-size=\"12\">\n");
    // An explicit background: viewers with a dark theme would otherwise show black text on black.
    put(out, "<rect width=\"", w, "\" height=\"", h, "\" fill=\"white\"/>\n");
}

inline void text(std::string& out, double x, double y, std::string_view anchor, std::string_view content,
                 std::string_view extra = {}) {
    put(out, "<text x=\"", number(x), "\" y=\"", number(y), "\" text-anchor=\"", anchor, "\"");
    if (!extra.empty()) put(out, " ", extra);
    put(out, ">", escape(content), "</text>\n");
}

inline void line(std::string& out, double x1, double y1, double x2, double y2, std::string_view stroke) {
    put(out, "<line x1=\"", number(x1), "\" y1=\"", number(y1), "\" x2=\"", number(x2), "\" y2=\"", number(y2),
        "\" stroke=\"", stroke, "\"/>\n");
}

// The plot area [left, right] x [top, bottom] in pixels.
struct frame {
    double left, top, right, bottom;
    double x(const axis& a, double v) const { return left + a.fraction(v) * (right - left); }
    double y(const axis& a, double v) const { return bottom - a.fraction(v) * (bottom - top); }
};

// Grid lines, tick labels and the frame of the plot area.
inline void draw_axes(std::string& out, const frame& f, const axis& ax, const axis& ay) {
    out += "<g class=\"axes\">\n";
    for (const double v : ax.values) {
        const double px = f.x(ax, v);
        line(out, px, f.top, px, f.bottom, "#e0e0e0");
        text(out, px, f.bottom + 16, "middle", ax.label(v));
    }
    for (const double v : ay.values) {
        const double py = f.y(ay, v);
        line(out, f.left, py, f.right, py, "#e0e0e0");
        text(out, f.left - 6, py + 4, "end", ay.label(v));
    }
    put(out, "<rect x=\"", number(f.left), "\" y=\"", number(f.top), "\" width=\"", number(f.right - f.left),
        "\" height=\"", number(f.bottom - f.top), "\" fill=\"none\" stroke=\"#404040\"/>\n");
    out += "</g>\n";
}

// Width of a legend on the right for these names: a 24-pixel swatch, the text, and padding;
// at most a third of the picture.
inline double legend_width(std::span<const std::string> names, int width) {
    if (names.empty()) return 0;
    std::size_t chars = 0;
    for (const auto& n : names) chars = std::max(chars, text_length(n));
    return std::min(36.0 + char_width * static_cast<double>(chars), width / 3.0);
}

inline bool finite_point(double x, double y) { return std::isfinite(x) && std::isfinite(y); }

inline bool has_band(const series& s) { return !s.lower.empty(); }
inline bool finite_band(const series& s, std::size_t i) {
    return std::isfinite(s.x[i]) && std::isfinite(s.lower[i]) && std::isfinite(s.upper[i]);
}

}  // namespace svg_detail

// A line plot of `lines` as an SVG document: axes with 1-2-5 ticks, a legend entry per series, a
// colour (and past eight series, a dash pattern) per series, and a marker at each point.
// Requires at least one series, x and y of equal length in each, lower and upper both empty or
// both as long as x, and width, height >= 100. A series with no finite point still gets its legend
// entry. A band needs two neighbouring finite points to show; a lone one still counts towards the
// y range.
inline std::string line_plot_svg(std::span<const series> lines, const line_plot_options& o) {
    using namespace svg_detail;
    require(!lines.empty(), "line_plot_svg: expected at least one series, found none");
    for (std::size_t i = 0; i < lines.size(); ++i)
        require(lines[i].x.size() == lines[i].y.size(), "line_plot_svg: series ", i, " ('", lines[i].name,
                "'): expected x and y of the same length, found ", lines[i].x.size(), " x values and ",
                lines[i].y.size(), " y values");
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const auto& s = lines[i];
        const bool none = s.lower.empty() && s.upper.empty();
        require(none || (s.lower.size() == s.x.size() && s.upper.size() == s.x.size()), "line_plot_svg: series ", i,
                " ('", s.name, "'): expected no band or lower and upper as long as x (", s.x.size(), "), found ",
                s.lower.size(), " lower and ", s.upper.size(), " upper values");
    }
    check_size(o.width, o.height, "line_plot_svg");

    double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
    for (const auto& s : lines)
        for (std::size_t i = 0; i < s.x.size(); ++i)
            if (finite_point(s.x[i], s.y[i])) {
                x_lo = std::min(x_lo, s.x[i]);
                x_hi = std::max(x_hi, s.x[i]);
                y_lo = std::min(y_lo, s.y[i]);
                y_hi = std::max(y_hi, s.y[i]);
            }
    for (const auto& s : lines)
        if (has_band(s))
            for (std::size_t i = 0; i < s.x.size(); ++i)
                if (finite_band(s, i)) {
                    x_lo = std::min(x_lo, s.x[i]);
                    x_hi = std::max(x_hi, s.x[i]);
                    y_lo = std::min({y_lo, s.lower[i], s.upper[i]});
                    y_hi = std::max({y_hi, s.lower[i], s.upper[i]});
                }
    if (x_lo > x_hi) x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;  // nothing finite: an empty unit frame

    const double width = o.width, height = o.height;
    std::vector<std::string> names;
    for (const auto& s : lines) names.push_back(s.name);
    const double legend_w = legend_width(names, o.width);
    const double top = o.title.empty() ? 16 : 40;
    const double bottom = height - (o.x_label.empty() ? 28 : 44);
    const axis ay = make_axis(y_lo, y_hi, std::clamp(static_cast<int>((bottom - top) / 60), 2, 10), false, true);
    const double left = std::min(width / 3.0, (o.y_label.empty() ? 12.0 : 30.0) + char_width * widest_label(ay));
    const double right = width - 16 - legend_w;
    const axis ax =
        make_axis(x_lo, x_hi, std::clamp(static_cast<int>((right - left) / 80), 2, 10), o.integer_x_ticks, true);
    const frame f{left, top, right, bottom};

    std::string out;
    open_svg(out, o.width, o.height);
    if (!o.title.empty()) text(out, width / 2, 24, "middle", o.title, "font-size=\"14\"");
    if (!o.x_label.empty()) text(out, (left + right) / 2, height - 10, "middle", o.x_label);
    if (!o.y_label.empty()) {
        const double cy = (top + bottom) / 2;
        text(out, 16, cy, "middle", o.y_label, std::string("transform=\"rotate(-90 16 ") + number(cy) + ")\"");
    }
    draw_axes(out, f, ax, ay);

    // Every band before every line, so no band hides another series' line. A run of consecutive
    // finite band points is one polygon: along lower, then back along upper.
    if (std::any_of(lines.begin(), lines.end(), has_band)) {
        out += "<g class=\"bands\" stroke=\"none\" fill-opacity=\"0.15\">\n";
        for (std::size_t k = 0; k < lines.size(); ++k) {
            const auto& s = lines[k];
            if (!has_band(s)) continue;
            std::size_t i = 0;
            while (i < s.x.size()) {
                if (!finite_band(s, i)) {
                    ++i;
                    continue;
                }
                std::size_t j = i;
                while (j < s.x.size() && finite_band(s, j)) ++j;
                if (j - i >= 2) {
                    put(out, "<polygon fill=\"", palette[k % palette_size], "\" points=\"");
                    for (std::size_t p = i; p < j; ++p)
                        put(out, number(f.x(ax, s.x[p])), ",", number(f.y(ay, s.lower[p])), " ");
                    for (std::size_t p = j; p-- > i;) {
                        put(out, number(f.x(ax, s.x[p])), ",", number(f.y(ay, s.upper[p])));
                        if (p > i) out += ' ';
                    }
                    out += "\"/>\n";
                }
                i = j;
            }
        }
        out += "</g>\n";
    }

    for (std::size_t k = 0; k < lines.size(); ++k) {
        const auto& s = lines[k];
        const std::string colour = palette[k % palette_size];
        const std::string dash = dashes[(k / palette_size) % dashes_size];
        put(out, "<g class=\"series\" stroke=\"", colour, "\" fill=\"", colour, "\">\n");
        // Runs of consecutive finite points, each one polyline; a lone point shows as its marker.
        std::size_t i = 0;
        while (i < s.x.size()) {
            if (!finite_point(s.x[i], s.y[i])) {
                ++i;
                continue;
            }
            std::size_t j = i;
            while (j < s.x.size() && finite_point(s.x[j], s.y[j])) ++j;
            if (j - i >= 2) {
                out += "<polyline fill=\"none\" stroke-width=\"1.5\"";
                if (!dash.empty()) put(out, " stroke-dasharray=\"", dash, "\"");
                out += " points=\"";
                for (std::size_t p = i; p < j; ++p) {
                    if (p > i) out += ' ';
                    put(out, number(f.x(ax, s.x[p])), ",", number(f.y(ay, s.y[p])));
                }
                out += "\"/>\n";
            }
            i = j;
        }
        for (std::size_t p = 0; p < s.x.size(); ++p)
            if (finite_point(s.x[p], s.y[p]))
                put(out, "<circle cx=\"", number(f.x(ax, s.x[p])), "\" cy=\"", number(f.y(ay, s.y[p])),
                    "\" r=\"2.5\" stroke=\"none\"/>\n");
        out += "</g>\n";
    }

    out += "<g class=\"legend\">\n";
    for (std::size_t k = 0; k < lines.size(); ++k) {
        const std::string colour = palette[k % palette_size];
        const std::string dash = dashes[(k / palette_size) % dashes_size];
        const double lx = right + 12, ly = top + 8 + 18 * static_cast<double>(k);
        put(out, "<line x1=\"", number(lx), "\" y1=\"", number(ly), "\" x2=\"", number(lx + 20), "\" y2=\"", number(ly),
            "\" stroke=\"", colour, "\" stroke-width=\"1.5\"");
        if (!dash.empty()) put(out, " stroke-dasharray=\"", dash, "\"");
        out += "/>\n";
        put(out, "<circle cx=\"", number(lx + 10), "\" cy=\"", number(ly), "\" r=\"2.5\" fill=\"", colour, "\"/>\n");
        text(out, lx + 26, ly + 4, "start", lines[k].name);
    }
    out += "</g>\n";
    out += "</svg>\n";
    return out;
}

// Writes line_plot_svg(lines, o) to `file`, atomically.
inline void write_line_plot(const std::filesystem::path& file, std::span<const series> lines,
                            const line_plot_options& o) {
    write_file_atomically(file, line_plot_svg(lines, o));
}

// A scatter plot of `points` (n, 2), flattened as x0, y0, x1, y1, ..., as an SVG document, one
// unit the same length on both axes. `classes` (n) colours the points (class c gets palette colour
// c mod 8); empty: all points in the first colour. Requires an even points.size(), classes empty
// or of n non-negative entries, width, height >= 100, a positive point radius, and finite bounds
// where a range is given. Points with a NaN or infinite coordinate are left out.
inline std::string scatter_svg(std::span<const float> points, std::span<const std::int64_t> classes,
                               const scatter_options& o) {
    using namespace svg_detail;
    require(points.size() % 2 == 0, "scatter_svg: expected points (n, 2) flattened, an even number of values, found ",
            points.size());
    const std::size_t n = points.size() / 2;
    require(classes.empty() || classes.size() == n, "scatter_svg: expected no classes or one per point (", n,
            "), found ", classes.size());
    for (std::size_t i = 0; i < classes.size(); ++i)
        require(classes[i] >= 0, "scatter_svg: expected non-negative classes, found ", classes[i], " at point ", i);
    check_size(o.width, o.height, "scatter_svg");
    require(std::isfinite(o.point_radius) && o.point_radius > 0,
            "scatter_svg: expected a positive point radius, found ", o.point_radius);

    // The shown range per axis: the caller's, or the finite points' with a 5% margin.
    auto range = [&](double lo, double hi, std::size_t coord, const char* name) -> std::pair<double, double> {
        if (lo < hi) {
            require(std::isfinite(lo) && std::isfinite(hi), "scatter_svg: expected a finite ", name, " range, found [",
                    lo, ", ", hi, "]");
            return {lo, hi};
        }
        double d_lo = INFINITY, d_hi = -INFINITY;
        for (std::size_t i = 0; i < n; ++i) {
            const double x = points[2 * i], y = points[2 * i + 1];
            if (!finite_point(x, y)) continue;
            const double v = coord == 0 ? x : y;
            d_lo = std::min(d_lo, v);
            d_hi = std::max(d_hi, v);
        }
        if (d_lo > d_hi) return {-1.0, 1.0};
        widen_degenerate(d_lo, d_hi);
        const double margin = 0.05 * (d_hi - d_lo);
        return {d_lo - margin, d_hi + margin};
    };
    const auto [x0, x1] = range(o.x_min, o.x_max, 0, "x");
    const auto [y0, y1] = range(o.y_min, o.y_max, 1, "y");

    const double width = o.width, height = o.height;
    const double legend_w = legend_width(o.class_names, o.width);
    const double top = o.title.empty() ? 16 : 40;
    const double bottom = height - 28;
    // The left margin is sized from the ticks of the given range; the shown range is a little wider
    // on one axis (equal scaling), which rarely adds a character to a label.
    const double left = std::min(width / 3.0, 14.0 + char_width * widest_label(make_axis(y0, y1, 5, false, false)));
    const double right = width - 16 - legend_w;
    const double pw = right - left, ph = bottom - top;

    // Equal scaling: the tighter axis sets pixels per unit, the other shows more than its range.
    const double scale = std::min(pw / (x1 * 0.5 - x0 * 0.5), ph / (y1 * 0.5 - y0 * 0.5)) * 0.5;
    const double xc = x0 * 0.5 + x1 * 0.5, yc = y0 * 0.5 + y1 * 0.5;
    const double xh = pw / scale * 0.5, yh = ph / scale * 0.5;
    const axis ax = make_axis(xc - xh, xc + xh, std::clamp(static_cast<int>(pw / 80), 2, 10), false, false);
    const axis ay = make_axis(yc - yh, yc + yh, std::clamp(static_cast<int>(ph / 60), 2, 10), false, false);
    const frame f{left, top, right, bottom};

    std::string out;
    open_svg(out, o.width, o.height);
    if (!o.title.empty()) text(out, width / 2, 24, "middle", o.title, "font-size=\"14\"");
    draw_axes(out, f, ax, ay);

    // Points grouped by class (ascending, stable in input order), one group per class colour.
    std::vector<std::pair<std::int64_t, std::size_t>> order;
    order.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        const double x = points[2 * i], y = points[2 * i + 1];
        if (!finite_point(x, y) || x < ax.lo || x > ax.hi || y < ay.lo || y > ay.hi) continue;
        order.emplace_back(classes.empty() ? 0 : classes[i], i);
    }
    std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    const std::string r = number(o.point_radius);
    for (std::size_t i = 0; i < order.size();) {
        const std::int64_t c = order[i].first;
        put(out, "<g class=\"points\" fill=\"", palette[static_cast<std::size_t>(c) % palette_size], "\">\n");
        for (; i < order.size() && order[i].first == c; ++i) {
            const std::size_t p = order[i].second;
            put(out, "<circle cx=\"", number(f.x(ax, points[2 * p])), "\" cy=\"", number(f.y(ay, points[2 * p + 1])),
                "\" r=\"", r, "\"/>\n");
        }
        out += "</g>\n";
    }

    if (!o.class_names.empty()) {
        out += "<g class=\"legend\">\n";
        for (std::size_t c = 0; c < o.class_names.size(); ++c) {
            const double lx = right + 12, ly = top + 8 + 18 * static_cast<double>(c);
            put(out, "<circle cx=\"", number(lx + 10), "\" cy=\"", number(ly), "\" r=\"4\" fill=\"",
                palette[c % palette_size], "\"/>\n");
            text(out, lx + 26, ly + 4, "start", o.class_names[c]);
        }
        out += "</g>\n";
    }
    out += "</svg>\n";
    return out;
}

// Writes scatter_svg(points, classes, o) to `file`, atomically.
inline void write_scatter(const std::filesystem::path& file, std::span<const float> points,
                          std::span<const std::int64_t> classes, const scatter_options& o) {
    write_file_atomically(file, scatter_svg(points, classes, o));
}

}  // namespace ouro::io
