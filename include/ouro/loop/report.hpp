// What a self-consuming run records and how it is written down: the per-(method, generation) rows
// of metrics and diagnostics, their CSV files, one SVG plot per quantity against generation (a
// line per method), and report.md, which shows the tables and the plots. The run directory's layout
// is ../shared/DESIGN.md's: config.json, metrics.csv, diagnostics.csv, grids/, plots/, report.md.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ouro/core/error.hpp"
#include "ouro/io/atomic_file.hpp"
#include "ouro/io/svg.hpp"

namespace ouro::loop {

struct quartiles {
    double mean = NAN, q25 = NAN, q50 = NAN, q75 = NAN;
};

// One generation of one method, as evaluated on G_k's samples (generation 0: G0's, the same for all).
struct metric_row {
    std::string method;
    std::int64_t generation = 0;
    double fid = NAN, precision = NAN, recall = NAN, density = NAN, coverage = NAN, kid = NAN;
    double precision_k5 = NAN, recall_k5 = NAN;  // precision / recall with k = 5 neighbours (the others: prdc.k, 3)
    double fid_ci_low = NAN, fid_ci_high = NAN;  // FID's 95% bootstrap interval over the evaluation samples
    double seconds = NAN;                        // wall time of the step (sampling, selection, fine-tuning, evaluation)
};

// The pool's items from one source generation, at one step: how many, how confident the probe is
// in them, and how many the method chose.
struct source_row {
    std::int64_t source_generation = 0;
    std::int64_t pool_count = 0, train_count = 0;
    double pool_confidence_mean = NAN;  // mean ξ of the pool's items of this source generation
};

// What the method trained G_k on (generation 0: the real set, which G0 was trained on).
struct diagnostic_row {
    std::string method;
    std::int64_t generation = 0;
    std::int64_t pool_size = 0, train_size = 0;
    // OLE of the training set's G0 latents (lower: classes more orthogonal). Not independent evidence
    // for ACU-LSF: its training set is chosen by the probe on these very latents.
    double ole = NAN;
    // OLE of G_k's evaluation samples' G0 latents (the first loop_options::sample_ole_count of them,
    // with their conditioning labels): the paper's analysis quantity, which rises as a model collapses.
    double sample_ole = NAN;
    quartiles pool_confidence;   // probe confidence ξ over the whole pool
    quartiles train_confidence;  // ... and over the selected training set
    double real_share = NAN;     // share of real items (generation 0) in the training set
    double mean_source_generation = NAN;
    // How evenly T_k covers the pool's labels (the conditioning labels; in the unlabelled mode the
    // clusters): exp of the Shannon entropy of T_k's label shares, from 1 (one label) to the pool's
    // number of labels (all equal), and the smallest label's share of T_k (0 where a label the pool
    // holds was not chosen at all). A global top-N filter may starve a class; these show whether it did.
    double train_effective_classes = NAN;
    double train_min_class_share = NAN;
    std::vector<source_row> sources;  // the pool by source generation (ξ by source, what was chosen)
    // The process's memory (core/memory_usage.hpp), in MiB: the resident set when the row was
    // committed, and its high-water mark during the row's own step (G_k's rows: reset before the
    // step where Linux allows it; G0's rows: since the process started, G0's training included). Like metrics.csv's
    // seconds these describe the run, not the result: a resumed run's differ, so the kill-and-resume tests compare
    // every other column.
    double rss_mib = NAN, peak_rss_mib = NAN;
    // The allocator's bytes in use (MiB) when the row's step began, before its chain was restored,
    // less the idle blocks the tensor buffer cache keeps for reuse (core/buffer_cache.hpp): what the
    // loop's live objects carry from one step to the next. Flat across generations where nothing
    // leaks; the resident set can still creep up by heap fragmentation and by the cache's reserve
    // (a block for each size a growing pool has needed, up to its limit), which this does not count.
    double carried_heap_mib = NAN;
    // The resident set (MiB) as the row's step began: after malloc's free pages were handed back and
    // before its chain was restored, i.e. what the process holds from one step to the next. A step's
    // peak (peak_rss_mib) adds its own chain, pool and working memory on top, and grows with the pool
    // the method keeps; this does not where nothing accumulates between steps. G0's rows: NaN.
    double start_rss_mib = NAN;
};

inline constexpr const char* metrics_csv_header =
    "method,generation,fid,precision,recall,density,coverage,kid,precision_k5,recall_k5,fid_ci_low,fid_ci_high,seconds";
inline constexpr const char* diagnostics_csv_header =
    "method,generation,pool_size,train_size,ole,pool_conf_mean,pool_conf_q25,pool_conf_q50,pool_conf_q75,"
    "train_conf_mean,train_conf_q25,train_conf_q50,train_conf_q75,real_share,mean_source_generation,sample_ole,"
    "train_effective_classes,train_min_class_share,rss_mib,peak_rss_mib,carried_heap_mib,start_rss_mib";
inline constexpr const char* sources_csv_header =
    "method,generation,source_generation,pool_count,train_count,pool_conf_mean";

// %.6g, or "nan": the same double always gives the same text (a resumed run's CSV equals an
// uninterrupted one's).
inline std::string format_number(double v, const char* format = "%.6g") {
    if (std::isnan(v)) return "nan";
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

// ---- JSON (the run's state.json keeps the rows with full precision) -----------------------------

namespace report_detail {
inline nlohmann::json number(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }
inline double number(const nlohmann::json& j) { return j.is_null() ? NAN : j.get<double>(); }
inline nlohmann::json to_json(const quartiles& q) {
    return {{"mean", number(q.mean)}, {"q25", number(q.q25)}, {"q50", number(q.q50)}, {"q75", number(q.q75)}};
}
inline quartiles quartiles_from_json(const nlohmann::json& j) {
    return {number(j.at("mean")), number(j.at("q25")), number(j.at("q50")), number(j.at("q75"))};
}
}  // namespace report_detail

inline nlohmann::json to_json(const metric_row& r) {
    using report_detail::number;
    return {{"method", r.method},
            {"generation", r.generation},
            {"fid", number(r.fid)},
            {"precision", number(r.precision)},
            {"recall", number(r.recall)},
            {"density", number(r.density)},
            {"coverage", number(r.coverage)},
            {"kid", number(r.kid)},
            {"precision_k5", number(r.precision_k5)},
            {"recall_k5", number(r.recall_k5)},
            {"fid_ci_low", number(r.fid_ci_low)},
            {"fid_ci_high", number(r.fid_ci_high)},
            {"seconds", number(r.seconds)}};
}
inline metric_row metric_row_from_json(const nlohmann::json& j) {
    using report_detail::number;
    metric_row r;
    r.method = j.at("method").get<std::string>();
    r.generation = j.at("generation").get<std::int64_t>();
    r.fid = number(j.at("fid"));
    r.precision = number(j.at("precision"));
    r.recall = number(j.at("recall"));
    r.density = number(j.at("density"));
    r.coverage = number(j.at("coverage"));
    r.kid = number(j.at("kid"));
    r.precision_k5 = number(j.at("precision_k5"));
    r.recall_k5 = number(j.at("recall_k5"));
    r.fid_ci_low = number(j.at("fid_ci_low"));
    r.fid_ci_high = number(j.at("fid_ci_high"));
    r.seconds = number(j.at("seconds"));
    return r;
}
inline nlohmann::json to_json(const diagnostic_row& r) {
    using report_detail::number;
    nlohmann::json sources = nlohmann::json::array();
    for (const auto& s : r.sources)
        sources.push_back({{"source_generation", s.source_generation},
                           {"pool_count", s.pool_count},
                           {"train_count", s.train_count},
                           {"pool_confidence_mean", number(s.pool_confidence_mean)}});
    return {{"method", r.method},
            {"generation", r.generation},
            {"pool_size", r.pool_size},
            {"train_size", r.train_size},
            {"ole", number(r.ole)},
            {"pool_confidence", report_detail::to_json(r.pool_confidence)},
            {"train_confidence", report_detail::to_json(r.train_confidence)},
            {"real_share", number(r.real_share)},
            {"mean_source_generation", number(r.mean_source_generation)},
            {"train_effective_classes", number(r.train_effective_classes)},
            {"train_min_class_share", number(r.train_min_class_share)},
            {"sample_ole", number(r.sample_ole)},
            {"sources", sources},
            {"rss_mib", number(r.rss_mib)},
            {"peak_rss_mib", number(r.peak_rss_mib)},
            {"carried_heap_mib", number(r.carried_heap_mib)},
            {"start_rss_mib", number(r.start_rss_mib)}};
}
inline diagnostic_row diagnostic_row_from_json(const nlohmann::json& j) {
    using report_detail::number;
    diagnostic_row r;
    r.method = j.at("method").get<std::string>();
    r.generation = j.at("generation").get<std::int64_t>();
    r.pool_size = j.at("pool_size").get<std::int64_t>();
    r.train_size = j.at("train_size").get<std::int64_t>();
    r.ole = number(j.at("ole"));
    r.pool_confidence = report_detail::quartiles_from_json(j.at("pool_confidence"));
    r.train_confidence = report_detail::quartiles_from_json(j.at("train_confidence"));
    r.real_share = number(j.at("real_share"));
    r.mean_source_generation = number(j.at("mean_source_generation"));
    r.sample_ole = number(j.at("sample_ole"));
    for (const auto& s : j.at("sources"))
        r.sources.push_back({s.at("source_generation").get<std::int64_t>(), s.at("pool_count").get<std::int64_t>(),
                             s.at("train_count").get<std::int64_t>(), number(s.at("pool_confidence_mean"))});
    // Optional: state files written before the memory columns existed still resume.
    if (j.contains("rss_mib")) r.rss_mib = number(j.at("rss_mib"));
    if (j.contains("peak_rss_mib")) r.peak_rss_mib = number(j.at("peak_rss_mib"));
    if (j.contains("carried_heap_mib")) r.carried_heap_mib = number(j.at("carried_heap_mib"));
    if (j.contains("start_rss_mib")) r.start_rss_mib = number(j.at("start_rss_mib"));
    // ... and before the class-balance columns existed.
    if (j.contains("train_effective_classes")) r.train_effective_classes = number(j.at("train_effective_classes"));
    if (j.contains("train_min_class_share")) r.train_min_class_share = number(j.at("train_min_class_share"));
    return r;
}

// ---- CSV ----------------------------------------------------------------------------------------

inline std::string metrics_csv(std::span<const metric_row> rows) {
    std::string out = std::string(metrics_csv_header) + "\n";
    for (const auto& r : rows)
        out += r.method + "," + std::to_string(r.generation) + "," + format_number(r.fid) + "," +
               format_number(r.precision) + "," + format_number(r.recall) + "," + format_number(r.density) + "," +
               format_number(r.coverage) + "," + format_number(r.kid) + "," + format_number(r.precision_k5) + "," +
               format_number(r.recall_k5) + "," + format_number(r.fid_ci_low) + "," + format_number(r.fid_ci_high) +
               "," + format_number(r.seconds, "%.1f") + "\n";
    return out;
}

inline std::string diagnostics_csv(std::span<const diagnostic_row> rows) {
    std::string out = std::string(diagnostics_csv_header) + "\n";
    auto q = [](const quartiles& v) {
        return format_number(v.mean) + "," + format_number(v.q25) + "," + format_number(v.q50) + "," +
               format_number(v.q75);
    };
    for (const auto& r : rows)
        out += r.method + "," + std::to_string(r.generation) + "," + std::to_string(r.pool_size) + "," +
               std::to_string(r.train_size) + "," + format_number(r.ole) + "," + q(r.pool_confidence) + "," +
               q(r.train_confidence) + "," + format_number(r.real_share) + "," +
               format_number(r.mean_source_generation) + "," + format_number(r.sample_ole) + "," +
               format_number(r.train_effective_classes) + "," + format_number(r.train_min_class_share) + "," +
               format_number(r.rss_mib, "%.1f") + "," + format_number(r.peak_rss_mib, "%.1f") + "," +
               format_number(r.carried_heap_mib, "%.1f") + "," + format_number(r.start_rss_mib, "%.1f") + "\n";
    return out;
}

inline std::string sources_csv(std::span<const diagnostic_row> rows) {
    std::string out = std::string(sources_csv_header) + "\n";
    for (const auto& r : rows)
        for (const auto& s : r.sources)
            out += r.method + "," + std::to_string(r.generation) + "," + std::to_string(s.source_generation) + "," +
                   std::to_string(s.pool_count) + "," + std::to_string(s.train_count) + "," +
                   format_number(s.pool_confidence_mean) + "\n";
    return out;
}

// ---- The report ---------------------------------------------------------------------------------

struct report_info {
    std::string title = "Self-consuming loop";
    std::vector<std::string> methods;  // report order
    std::int64_t generations = 0;      // K
    double clustering_accuracy = NAN;  // unlabelled runs
    std::string clustering = "knn_spectral";  // ... and how their labels of D_r were made
    double probe_holdout_accuracy = NAN;
    bool grids = true;  // grids/<method>_gen<K>.png exist
};

// A quantity of a row by name, for the plots and tables.
struct metric_column {
    const char* key;    // file name and CSV column
    const char* label;  // axis label
    double (*get)(const metric_row&);
    bool lower_is_better;
};
inline constexpr metric_column metric_columns[] = {
    {"fid", "FID (lower is better)", [](const metric_row& r) { return r.fid; }, true},
    {"precision", "precision", [](const metric_row& r) { return r.precision; }, false},
    {"recall", "recall", [](const metric_row& r) { return r.recall; }, false},
    {"density", "density", [](const metric_row& r) { return r.density; }, false},
    {"coverage", "coverage", [](const metric_row& r) { return r.coverage; }, false},
    {"kid", "KID (lower is better)", [](const metric_row& r) { return r.kid; }, true},
    {"precision_k5", "precision (k = 5)", [](const metric_row& r) { return r.precision_k5; }, false},
    {"recall_k5", "recall (k = 5)", [](const metric_row& r) { return r.recall_k5; }, false},
};

// A fixed-width text table of one generation's rows (every method), for the terminal and report.md.
inline std::string metrics_table(std::span<const metric_row> rows, std::span<const std::string> methods,
                                 std::int64_t generation, bool markdown = false) {
    std::string out;
    char line[256];
    if (markdown) {
        out +=
            "| method | FID | FID 95% (bootstrap) | precision | recall | precision k=5 | recall k=5 | density | "
            "coverage | KID |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    } else {
        std::snprintf(line, sizeof line, "%-10s %9s %17s %9s %9s %9s %9s %9s\n", "method", "FID", "FID 95%",
                      "precision", "recall", "density", "coverage", "KID");
        out += line;
    }
    for (const auto& m : methods)
        for (const auto& r : rows) {
            if (r.method != m || r.generation != generation) continue;
            if (markdown)
                out += "| " + r.method + " | " + format_number(r.fid, "%.3f") + " | " +
                       format_number(r.fid_ci_low, "%.1f") + "–" + format_number(r.fid_ci_high, "%.1f") + " | " +
                       format_number(r.precision, "%.3f") + " | " + format_number(r.recall, "%.3f") + " | " +
                       format_number(r.precision_k5, "%.3f") + " | " + format_number(r.recall_k5, "%.3f") + " | " +
                       format_number(r.density, "%.3f") + " | " + format_number(r.coverage, "%.3f") + " | " +
                       format_number(r.kid, "%.4f") + " |\n";
            else {
                const std::string ci =
                    "[" + format_number(r.fid_ci_low, "%.1f") + ", " + format_number(r.fid_ci_high, "%.1f") + "]";
                std::snprintf(line, sizeof line, "%-10s %9.3f %17s %9.3f %9.3f %9.3f %9.3f %9.4f\n", r.method.c_str(),
                              r.fid, ci.c_str(), r.precision, r.recall, r.density, r.coverage, r.kid);
                out += line;
            }
        }
    return out;
}

namespace report_detail {

template <class Row>
std::vector<io::series> series_of(std::span<const Row> rows, std::span<const std::string> methods,
                                  const std::function<double(const Row&)>& get) {
    std::vector<io::series> out;
    for (const auto& m : methods) {
        io::series s;
        s.name = m;
        for (const auto& r : rows)
            if (r.method == m) {
                s.x.push_back(static_cast<double>(r.generation));
                s.y.push_back(get(r));
            }
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace report_detail

// Writes metrics.csv, diagnostics.csv, sources.csv, plots/*.svg and report.md into `dir` (each atomically).
inline void write_run_outputs(const std::filesystem::path& dir, std::span<const metric_row> metrics,
                              std::span<const diagnostic_row> diagnostics, const report_info& info) {
    io::write_file_atomically(dir / "metrics.csv", metrics_csv(metrics));
    io::write_file_atomically(dir / "diagnostics.csv", diagnostics_csv(diagnostics));
    io::write_file_atomically(dir / "sources.csv", sources_csv(diagnostics));

    std::vector<std::pair<std::string, std::string>> plots;  // (file, caption)
    for (const auto& c : metric_columns) {
        const auto lines = report_detail::series_of<metric_row>(metrics, info.methods, c.get);
        io::write_line_plot(dir / "plots" / (std::string(c.key) + ".svg"), lines,
                            {.title = c.label, .x_label = "generation", .y_label = c.label});
        plots.emplace_back(std::string("plots/") + c.key + ".svg", c.label);
    }
    struct diag_column {
        const char* key;
        const char* label;
        double (*get)(const diagnostic_row&);
    };
    static constexpr diag_column diag_columns[] = {
        {"ole", "OLE of the training set's latents", [](const diagnostic_row& r) { return r.ole; }},
        {"sample_ole", "OLE of G_k's samples' latents", [](const diagnostic_row& r) { return r.sample_ole; }},
        {"train_confidence", "mean probe confidence of the training set",
         [](const diagnostic_row& r) { return r.train_confidence.mean; }},
        {"real_share", "share of real items in the training set", [](const diagnostic_row& r) { return r.real_share; }},
        {"train_effective_classes", "effective number of labels in the training set (exp entropy)",
         [](const diagnostic_row& r) { return r.train_effective_classes; }},
        {"rss", "resident memory when the generation was committed (MiB)",
         [](const diagnostic_row& r) { return r.rss_mib; }},
        {"carried_heap", "live heap carried into the step (MiB; the buffer cache's idle blocks excluded)",
         [](const diagnostic_row& r) { return r.carried_heap_mib; }},
        {"start_rss", "resident memory as the step began (MiB)", [](const diagnostic_row& r) { return r.start_rss_mib; }},
    };
    for (const auto& c : diag_columns) {
        const auto lines = report_detail::series_of<diagnostic_row>(diagnostics, info.methods, c.get);
        io::write_line_plot(dir / "plots" / (std::string(c.key) + ".svg"), lines,
                            {.title = c.label, .x_label = "generation", .y_label = c.label});
        plots.emplace_back(std::string("plots/") + c.key + ".svg", c.label);
    }

    std::int64_t last = -1;
    for (const auto& r : metrics) last = std::max(last, r.generation);
    std::string md = "# " + info.title + "\n\n";
    md +=
        "Settings: [config.json](config.json). Every row: [metrics.csv](metrics.csv), "
        "[diagnostics.csv](diagnostics.csv), the pool by source generation: [sources.csv](sources.csv).\n\n";
    if (last < info.generations)
        md += "**Unfinished run**: generations finished so far: " + std::to_string(std::max<std::int64_t>(last, 0)) +
              " of " + std::to_string(info.generations) + ". Run the same command again to continue.\n\n";
    if (!std::isnan(info.clustering_accuracy))
        md +=
            "Unlabelled run: the probe was trained on " + info.clustering +
            " cluster labels of the real latents; their clustering accuracy against the true labels is " +
            format_number(info.clustering_accuracy, "%.4f") + ".\n\n";
    if (!std::isnan(info.probe_holdout_accuracy))
        md +=
            "Probe accuracy on held-out real latents: " + format_number(info.probe_holdout_accuracy, "%.4f") + ".\n\n";
    if (last >= 0) {
        md +=
            "## Generation " + std::to_string(last) + "\n\n" + metrics_table(metrics, info.methods, last, true) + "\n";
        md += "## Every generation\n\n";
        // The generations that have rows (in a run, every one from 0 to the last), not a count up
        // to `last`: a row of generation 10^8 in an edited state.json would otherwise mean 10^8 tables.
        std::vector<std::int64_t> generations;
        for (const auto& r : metrics)
            if (r.generation >= 0) generations.push_back(r.generation);
        std::sort(generations.begin(), generations.end());
        generations.erase(std::unique(generations.begin(), generations.end()), generations.end());
        for (const std::int64_t g : generations)
            md += "Generation " + std::to_string(g) + ":\n\n" + metrics_table(metrics, info.methods, g, true) + "\n";
    }
    md += "## Plots\n\n";
    for (const auto& [file, caption] : plots) md += "![" + caption + "](" + file + ")\n\n";
    md +=
        "## Diagnostics of the last generation's training sets\n\n"
        "| method | pool | train | OLE of T_k | OLE of samples | ξ pool mean | ξ train mean | ξ train q25 / q50 / q75 "
        "| real share | mean source gen. |\n"
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|\n";
    for (const auto& m : info.methods)
        for (const auto& r : diagnostics)
            if (r.method == m && r.generation == last)
                md += "| " + r.method + " | " + std::to_string(r.pool_size) + " | " + std::to_string(r.train_size) +
                      " | " + format_number(r.ole, "%.4f") + " | " + format_number(r.sample_ole, "%.4f") + " | " +
                      format_number(r.pool_confidence.mean, "%.3f") + " | " +
                      format_number(r.train_confidence.mean, "%.3f") + " | " +
                      format_number(r.train_confidence.q25, "%.3f") + " / " +
                      format_number(r.train_confidence.q50, "%.3f") + " / " +
                      format_number(r.train_confidence.q75, "%.3f") + " | " + format_number(r.real_share, "%.3f") +
                      " | " + format_number(r.mean_source_generation, "%.2f") + " |\n";
    if (info.grids && last >= 0) {
        md += "\n## Samples\n\nG0: ![G0](grids/G0_gen0.png)\n\n";
        if (last >= 1)
            for (const auto& m : info.methods) {
                std::string lower = m;
                for (char& ch : lower) ch = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
                md += m + ", generation " + std::to_string(last) + ": ![" + m + "](grids/" + lower + "_gen" +
                      std::to_string(last) + ".png)\n\n";
            }
    }
    io::write_file_atomically(dir / "report.md", md);
}

}  // namespace ouro::loop
