// SVG plots: documents that parse (balanced tags, escaped text), nice ticks for known ranges, gaps
// at NaN points, equal axis scaling in scatter plots, the input checks, atomic writes and
// byte-identical output for identical input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "ouro/io/svg.hpp"
#include "support/files.hpp"

using namespace ouro;
namespace fs = std::filesystem;

namespace {

// Checks that every start tag has its end tag, properly nested, under one <svg> root, and that
// every '&' starts one of the five predefined entities. Returns "" or what is wrong.
std::string tag_balance_problem(const std::string& doc) {
    std::vector<std::string> open;
    bool root_seen = false;
    for (std::size_t i = 0; i < doc.size(); ++i) {
        if (doc[i] == '&') {
            static const char* entities[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
            bool ok = false;
            for (const char* e : entities) ok = ok || doc.compare(i, std::strlen(e), e) == 0;
            if (!ok) return "bare '&' at " + std::to_string(i);
            continue;
        }
        if (doc[i] == '>') return "stray '>' at " + std::to_string(i);
        if (doc[i] != '<') continue;
        const std::size_t end = doc.find('>', i);
        if (end == std::string::npos) return "unterminated tag at " + std::to_string(i);
        const std::string tag = doc.substr(i + 1, end - i - 1);
        if (tag.find('<') != std::string::npos) return "'<' inside a tag at " + std::to_string(i);
        i = end;
        if (open.empty() && root_seen) return "content after the root element: <" + tag + ">";
        if (tag.starts_with('/')) {
            const std::string name = tag.substr(1);
            if (open.empty() || open.back() != name)
                return "</" + name + "> closes " + (open.empty() ? "nothing" : open.back());
            open.pop_back();
            continue;
        }
        const std::string name = tag.substr(0, tag.find_first_of(" \t\n/"));
        if (!root_seen && name != "svg") return "root element is <" + name + ">";
        root_seen = true;
        if (!tag.ends_with('/')) open.push_back(name);
    }
    if (!open.empty()) return "<" + open.back() + "> never closed";
    return root_seen ? "" : "no element";
}

std::size_t count(const std::string& haystack, const std::string& needle) {
    std::size_t n = 0;
    for (std::size_t p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) ++n;
    return n;
}

// Contents of the <text> elements with the given text-anchor (tick labels: "end" on y, "middle" on x).
std::set<std::string> texts_anchored(const std::string& doc, const std::string& anchor) {
    std::set<std::string> out;
    const std::regex re("<text [^>]*text-anchor=\"" + anchor + "\"[^>]*>([^<]*)</text>");
    for (std::sregex_iterator it(doc.begin(), doc.end(), re), end; it != end; ++it) out.insert((*it)[1].str());
    return out;
}

struct point {
    double x, y;
};

std::vector<point> circles(const std::string& doc) {
    std::vector<point> out;
    const std::regex re("<circle cx=\"([^\"]+)\" cy=\"([^\"]+)\"");
    for (std::sregex_iterator it(doc.begin(), doc.end(), re), end; it != end; ++it)
        out.push_back({std::stod((*it)[1].str()), std::stod((*it)[2].str())});
    return out;
}

void require_document(const std::string& doc) {
    REQUIRE(doc.starts_with("<svg"));
    REQUIRE(doc.ends_with("</svg>\n"));
    INFO(doc);
    REQUIRE(tag_balance_problem(doc) == "");
}

std::vector<io::series> two_methods() {
    return {{"baseline", {0, 1, 2, 3, 4, 5}, {0, 2.5, 5, 7.5, 10, 9}},
            {"ours <filtered>", {0, 1, 2, 3, 4, 5}, {1, 1, 1, 2, 2, 2}}};
}

}  // namespace

TEST_CASE("tag balance checker rejects broken documents", "[svg]") {
    CHECK(tag_balance_problem("<svg><g></g></svg>\n") == "");
    CHECK(tag_balance_problem("<svg><g></svg>") != "");
    CHECK(tag_balance_problem("<svg><g/></g></svg>") != "");
    CHECK(tag_balance_problem("<svg><text>a & b</text></svg>") != "");
    CHECK(tag_balance_problem("<svg><text>a < b</text></svg>") != "");
    CHECK(tag_balance_problem("<svg></svg><g/>") != "");
}

TEST_CASE("line plot is a balanced document with every name and the escaped title", "[svg]") {
    const auto lines = two_methods();
    const std::string doc =
        io::line_plot_svg(lines, {.title = "a<b & c", .x_label = "generation", .y_label = "FID \"x\" 'y'"});
    require_document(doc);
    CHECK(doc.find("a&lt;b &amp; c") != std::string::npos);
    CHECK(doc.find("a<b") == std::string::npos);
    CHECK(doc.find(">baseline</text>") != std::string::npos);
    CHECK(doc.find(">ours &lt;filtered&gt;</text>") != std::string::npos);
    CHECK(doc.find("FID &quot;x&quot; &apos;y&apos;") != std::string::npos);
    CHECK(doc.find(">generation</text>") != std::string::npos);
    CHECK(doc.find("width=\"640\" height=\"400\"") != std::string::npos);
    // A distinct Okabe-Ito colour per series.
    CHECK(count(doc, "class=\"series\" stroke=\"#0072B2\"") == 1);
    CHECK(count(doc, "class=\"series\" stroke=\"#D55E00\"") == 1);
    // One polyline per series, a marker per point (12) and one per legend entry (2).
    CHECK(count(doc, "<polyline") == 2);
    CHECK(count(doc, "<circle") == 14);
}

TEST_CASE("line plot ticks are 1-2-5 steps covering the data", "[svg]") {
    const std::vector<io::series> lines = {{"m", {0, 1, 2, 3, 4, 5}, {0, 3, 10, 4, 6, 1}}};
    const std::string doc = io::line_plot_svg(lines, {});
    const auto y_ticks = texts_anchored(doc, "end");
    const std::set<std::string> twos = {"0", "2", "4", "6", "8", "10"}, fives = {"0", "5", "10"};
    CHECK((y_ticks == twos || y_ticks == fives));
    // Integer x ticks: whole generations only.
    const auto x_ticks = texts_anchored(doc, "middle");
    for (const char* g : {"0", "1", "2", "3", "4", "5"}) CHECK(x_ticks.count(g) == 1);
    for (const auto& t : x_ticks) CHECK(t.find('.') == std::string::npos);

    SECTION("fractional x ticks when asked for") {
        const std::vector<io::series> short_run = {{"m", {0, 0.5, 1}, {1, 2, 3}}};
        io::line_plot_options o;
        o.integer_x_ticks = false;
        const auto fractional = texts_anchored(io::line_plot_svg(short_run, o), "middle");
        CHECK((fractional.count("0.2") == 1 || fractional.count("0.5") == 1));
        const auto whole = texts_anchored(io::line_plot_svg(short_run, {}), "middle");
        CHECK(whole == std::set<std::string>{"0", "1"});
    }
    SECTION("small values keep their digits, without rounding noise") {
        const std::vector<io::series> tiny = {{"m", {0, 1, 2, 3}, {0.1, 0.2, 0.3, 0.4}}};
        const auto ticks = texts_anchored(io::line_plot_svg(tiny, {}), "end");
        CHECK(ticks.count("0.3") == 1);
        CHECK(ticks.count("0.1") == 1);
        for (const auto& t : ticks) CHECK(t.size() <= 4);
    }
    SECTION("a constant series still gets an axis around its value") {
        const std::vector<io::series> flat = {{"m", {0, 1, 2}, {7, 7, 7}}};
        const std::string flat_doc = io::line_plot_svg(flat, {});
        require_document(flat_doc);
        CHECK(texts_anchored(flat_doc, "end").count("7") == 1);
    }
}

TEST_CASE("line plot leaves a gap at NaN and infinite points", "[svg]") {
    const double nan = std::nan(""), inf = INFINITY;
    SECTION("a NaN splits the line in two") {
        const std::vector<io::series> lines = {{"m", {0, 1, 2, 3, 4}, {1, 2, nan, 3, 4}}};
        const std::string doc = io::line_plot_svg(lines, {});
        require_document(doc);
        CHECK(count(doc, "<polyline") == 2);
        CHECK(count(doc, "<circle") == 4 + 1);  // 4 finite points + the legend marker
        CHECK(doc.find("nan") == std::string::npos);
    }
    SECTION("an infinite value is not drawn and does not stretch the axis") {
        const std::vector<io::series> lines = {{"m", {0, 1, 2, 3}, {0, 10, inf, 5}}};
        const std::string doc = io::line_plot_svg(lines, {});
        require_document(doc);
        CHECK(count(doc, "<polyline") == 1);  // {0, 10}; the 5 after the gap stands alone
        CHECK(count(doc, "<circle") == 3 + 1);
        const auto y_ticks = texts_anchored(doc, "end");
        CHECK(y_ticks.count("10") == 1);
        CHECK(y_ticks.size() <= 6);
        CHECK(doc.find("inf") == std::string::npos);
    }
    SECTION("an all-NaN series keeps its legend entry but draws no line") {
        const std::vector<io::series> lines = {{"drawn", {0, 1, 2}, {1, 2, 3}},
                                               {"missing", {0, 1, 2}, {nan, nan, nan}}};
        const std::string doc = io::line_plot_svg(lines, {});
        require_document(doc);
        CHECK(doc.find(">missing</text>") != std::string::npos);
        CHECK(count(doc, "<polyline") == 1);
        CHECK(count(doc, "<circle") == 3 + 2);
    }
    SECTION("nothing finite at all still gives a document") {
        const std::vector<io::series> lines = {{"a", {}, {}}, {"b", {0}, {nan}}};
        require_document(io::line_plot_svg(lines, {}));
    }
}

TEST_CASE("line plot gives every one of many series its own colour and dash", "[svg]") {
    std::vector<io::series> lines;
    for (int k = 0; k < 10; ++k) {
        std::string name = "s";
        name += std::to_string(k);
        lines.push_back({name, {0, 1}, {double(k), double(k + 1)}});
    }
    const std::string doc = io::line_plot_svg(lines, {});
    require_document(doc);
    std::set<std::string> styles;
    const std::regex re("class=\"series\" stroke=\"([^\"]+)\"[^>]*>\\n(<polyline[^>]*>)");
    for (std::sregex_iterator it(doc.begin(), doc.end(), re), end; it != end; ++it) {
        const std::string polyline = (*it)[2].str();
        const auto dash = polyline.find("stroke-dasharray");
        styles.insert((*it)[1].str() + "|" + (dash == std::string::npos ? "" : polyline.substr(dash, 30)));
    }
    CHECK(styles.size() == 10);
}

TEST_CASE("line plot rejects malformed input with ouro::error", "[svg]") {
    const std::vector<io::series> none;
    CHECK_THROWS_AS(io::line_plot_svg(none, {}), error);
    const std::vector<io::series> ragged = {{"m", {0, 1, 2}, {1, 2}}};
    CHECK_THROWS_AS(io::line_plot_svg(ragged, {}), error);
    const auto ok = two_methods();
    CHECK_THROWS_AS(io::line_plot_svg(ok, {.width = 99}), error);
    io::line_plot_options low;
    low.height = 50;
    CHECK_THROWS_AS(io::line_plot_svg(ok, low), error);
    CHECK_NOTHROW(io::line_plot_svg(ok, {.width = 100, .height = 100}));
    try {
        io::line_plot_svg(ragged, {});
    } catch (const error& e) {
        const std::string what = e.what();
        CHECK(what.find("3 x values") != std::string::npos);
        CHECK(what.find("2 y values") != std::string::npos);
    }
}

TEST_CASE("identical input gives identical bytes", "[svg]") {
    const auto lines = two_methods();
    const io::line_plot_options o{.title = "t", .x_label = "x", .y_label = "y"};
    CHECK(io::line_plot_svg(lines, o) == io::line_plot_svg(two_methods(), o));
    const std::vector<float> pts = {0.1f, 0.2f, -1.5f, 2.25f, 3, -0.5f};
    const std::vector<std::int64_t> cls = {2, 0, 1};
    const io::scatter_options so{.title = "s", .class_names = {"a", "b", "c"}};
    CHECK(io::scatter_svg(pts, cls, so) == io::scatter_svg(std::vector<float>(pts), cls, so));
}

TEST_CASE("scatter plot scales both axes equally and colours points by class", "[svg]") {
    // Ends of a 6-wide, 2-high cross: equal scaling makes pixels per unit the same on both axes.
    const std::vector<float> pts = {-3, 0, 3, 0, 0, 1, 0, -1};
    const std::vector<std::int64_t> cls = {0, 0, 1, 1};
    const std::string doc =
        io::scatter_svg(pts, cls, {.title = "gen 3: <x>", .x_min = -3, .x_max = 3, .y_min = -1, .y_max = 1});
    require_document(doc);
    CHECK(doc.find("gen 3: &lt;x&gt;") != std::string::npos);
    const auto c = circles(doc);
    REQUIRE(c.size() == 4);  // no legend without class names
    const double per_unit_x = std::abs(c[1].x - c[0].x) / 6.0;
    const double per_unit_y = std::abs(c[3].y - c[2].y) / 2.0;
    CHECK(per_unit_x > 10);
    CHECK(per_unit_y == Approx(per_unit_x).epsilon(1e-3));
    CHECK(c[2].y < c[3].y);  // SVG's y grows downwards: y = 1 is above y = -1
    CHECK(c[0].y == Approx(c[2].y * 0.5 + c[3].y * 0.5).epsilon(1e-4));
    // Class 0 in the first palette colour, class 1 in the second, one group each.
    const auto g0 = doc.find("<g class=\"points\" fill=\"#0072B2\">");
    const auto g1 = doc.find("<g class=\"points\" fill=\"#D55E00\">");
    REQUIRE(g0 != std::string::npos);
    REQUIRE(g1 != std::string::npos);
    CHECK(count(doc.substr(g0, g1 - g0), "<circle") == 2);
    CHECK(count(doc, "r=\"1.5\"") == 4);
}

TEST_CASE("scatter plot fits, clips, legends and skips non-finite points", "[svg]") {
    const float nan = std::nanf("");
    SECTION("fitted range shows every finite point") {
        const std::vector<float> pts = {10, 20, 12, 21, nan, 0, 11, 25};
        const std::string doc = io::scatter_svg(pts, {}, {});
        require_document(doc);
        CHECK(count(doc, "<circle") == 3);
        CHECK(doc.find("nan") == std::string::npos);
    }
    SECTION("points outside a given range are left out") {
        const std::vector<float> pts = {0, 0, 100, 0, 0, -100};
        const std::string doc = io::scatter_svg(pts, {}, {.x_min = -3, .x_max = 3, .y_min = -3, .y_max = 3});
        CHECK(count(doc, "<circle") == 1);
    }
    SECTION("class names make an escaped legend") {
        const std::vector<float> pts = {0, 0, 1, 1};
        const std::vector<std::int64_t> cls = {0, 9};
        const std::string doc = io::scatter_svg(pts, cls, {.class_names = {"zero & one", "one"}});
        require_document(doc);
        CHECK(doc.find(">zero &amp; one</text>") != std::string::npos);
        CHECK(doc.find(">one</text>") != std::string::npos);
        CHECK(count(doc, "<circle") == 2 + 2);
        CHECK(doc.find("fill=\"#D55E00\"") != std::string::npos);  // class 9 wraps to colour 1
    }
    SECTION("one point, or none, still gives a document") {
        const std::vector<float> one = {5, 5};
        require_document(io::scatter_svg(one, {}, {}));
        require_document(io::scatter_svg(std::vector<float>{}, {}, {}));
    }
}

TEST_CASE("scatter plot rejects malformed input with ouro::error", "[svg]") {
    const std::vector<float> pts = {0, 0, 1, 1};
    const std::vector<float> odd = {0, 0, 1};
    CHECK_THROWS_AS(io::scatter_svg(odd, {}, {}), error);
    const std::vector<std::int64_t> too_few = {0};
    CHECK_THROWS_AS(io::scatter_svg(pts, too_few, {}), error);
    const std::vector<std::int64_t> negative = {0, -1};
    CHECK_THROWS_AS(io::scatter_svg(pts, negative, {}), error);
    CHECK_THROWS_AS(io::scatter_svg(pts, {}, {.width = 50}), error);
    CHECK_THROWS_AS(io::scatter_svg(pts, {}, {.height = 99}), error);
    CHECK_THROWS_AS(io::scatter_svg(pts, {}, {.point_radius = 0}), error);
    CHECK_THROWS_AS(io::scatter_svg(pts, {}, {.x_min = -INFINITY, .x_max = 1}), error);
    CHECK_NOTHROW(io::scatter_svg(pts, std::vector<std::int64_t>{0, 1}, {}));
}

TEST_CASE("write_line_plot and write_scatter write atomically and overwrite", "[svg]") {
    const fs::path dir = fs::temp_directory_path() / "ouro_test_svg";
    fs::remove_all(dir);
    const fs::path plot = dir / "plots" / "fid.svg";
    const fs::path scatter = dir / "scatter.svg";

    const auto lines = two_methods();
    io::write_line_plot(plot, lines, {.title = "first"});
    CHECK(io::read_text_file(plot) == io::line_plot_svg(lines, {.title = "first"}));
    io::write_line_plot(plot, lines, {.title = "second"});
    const std::string second = io::read_text_file(plot);
    CHECK(second == io::line_plot_svg(lines, {.title = "second"}));
    CHECK(second.find("first") == std::string::npos);

    const std::vector<float> pts = {0, 0, 1, 1};
    const std::vector<std::int64_t> cls = {0, 1};
    fs::create_directories(dir);
    { std::ofstream(scatter) << "old contents"; }
    io::write_scatter(scatter, pts, cls, {.title = "sc"});
    CHECK(io::read_text_file(scatter) == io::scatter_svg(pts, cls, {.title = "sc"}));

    // No temporary file left beside the targets.
    CHECK(testing::count_temporaries(dir) == 0);
    // A failed check writes nothing and leaves the old file as it was.
    CHECK_THROWS_AS(io::write_line_plot(plot, std::vector<io::series>{}, {}), error);
    CHECK(io::read_text_file(plot) == second);
    fs::remove_all(dir);
}
