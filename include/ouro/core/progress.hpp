// Progress of long work (training, sampling, feature extraction) and the callback protocol of
// trainers. `progress` draws one self-updating bar line on a terminal and prints plain log lines
// every N steps anywhere else (a log file, CI). Callbacks are plain objects whose optional hooks
// (on_step, on_epoch_end) are found at compile time: nothing to inherit.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(_WIN32)
#include <io.h>
#else
#include <unistd.h>
#endif

#include "ouro/core/error.hpp"

namespace ouro {

// "m:ss"-style duration as tqdm prints it: "07:05" below an hour, "1:02:03" from one hour on
// (whole seconds, truncated); "?" when unknown (negative or not finite).
inline std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    const auto total = static_cast<long long>(seconds);
    const long long h = total / 3600, m = total / 60 % 60, s = total % 60;
    char buf[48];
    if (h > 0) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", h, m, s);
    else
        std::snprintf(buf, sizeof buf, "%02lld:%02lld", m, s);
    return buf;
}

// A rate such as "12.34 it/s" or "1.50k img/s"; below one item per second the inverse, "2.50 s/it",
// which stays readable for slow steps; "? it/s" when unknown (zero, negative or not finite).
inline std::string format_rate(double items_per_second, std::string_view unit = "it") {
    const std::string u(unit);
    if (!std::isfinite(items_per_second) || items_per_second <= 0) return "? " + u + "/s";
    char buf[64];
    if (items_per_second < 1.0) {
        std::snprintf(buf, sizeof buf, "%.2f s/%s", 1.0 / items_per_second, u.c_str());
    } else {
        const char* suffix = "";
        double v = items_per_second;
        if (v >= 1e6) v /= 1e6, suffix = "M";
        else if (v >= 1e3)
            v /= 1e3, suffix = "k";
        std::snprintf(buf, sizeof buf, "%.2f%s %s/s", v, suffix, u.c_str());
    }
    return buf;
}

// A named number shown beside the progress, e.g. {"loss", 0.0312}.
struct progress_value {
    std::string_view name;
    double value;
};

// "loss=0.0312 lr=0.0001": each value with 4 significant digits (printf %.4g).
inline std::string format_values(std::span<const progress_value> values) {
    std::string s;
    char buf[64];
    for (const progress_value& v : values) {
        std::snprintf(buf, sizeof buf, "%.4g", v.value);
        if (!s.empty()) s += ' ';
        s += v.name;
        s += '=';
        s += buf;
    }
    return s;
}

enum class progress_style {
    automatic,  // bar when writing to std::cerr and stderr is a terminal, log lines otherwise
    bar,        // one line redrawn in place ('\r')
    log,        // a plain line every `log_every` steps and at the last one
    none,       // nothing (a quiet run keeps its callbacks unchanged)
};

struct progress_options {
    std::string label{};              // printed first, e.g. "train gen 3"
    std::int64_t log_every = 100;     // steps between log lines (log style)
    std::int64_t items_per_step = 1;  // e.g. the batch size, so the rate reads in images/s
    std::string unit = "it";          // the rate's unit: "it", "img", "sample"
    std::int64_t initial_step = 0;    // where a resumed run starts; the rate counts from here
    progress_style style = progress_style::automatic;
    std::ostream* out = nullptr;      // nullptr: std::cerr
    std::function<double()> clock{};  // seconds on any fixed origin; empty: std::chrono::steady_clock
    double redraw_interval = 0.1;     // least seconds between two bar redraws, so tight loops stay fast
    int bar_width = 24;
};

// Reports the progress of `total` steps (total <= 0: unknown, no percentage or ETA).
// update(step, values) is called with the number of steps completed so far.
class progress {
public:
    explicit progress(std::int64_t total, progress_options options = {})
        : total_(total), opt_(std::move(options)), out_(opt_.out ? opt_.out : &std::cerr) {
        if (opt_.log_every < 1) fail("progress: log_every must be at least 1, found ", opt_.log_every);
        if (opt_.items_per_step < 1) fail("progress: items_per_step must be at least 1, found ", opt_.items_per_step);
        if (!opt_.clock)
            opt_.clock = [] {
                return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
            };
        bar_ = opt_.style == progress_style::bar ||
               (opt_.style == progress_style::automatic && out_ == &std::cerr && stderr_is_terminal());
        start_ = opt_.clock();
        last_step_ = last_logged_ = opt_.initial_step;
    }

    progress(const progress&) = delete;
    progress& operator=(const progress&) = delete;

    // Ends a bar left mid-line, so what is printed next starts on a line of its own.
    ~progress() {
        if (bar_ && line_open_) *out_ << '\n' << std::flush;
    }

    void update(std::int64_t step, std::initializer_list<progress_value> values = {}) {
        update(step, std::span<const progress_value>(values.begin(), values.size()));
    }

    void update(std::int64_t step, std::span<const progress_value> values) {
        if (opt_.style == progress_style::none) return;
        const double now = opt_.clock();
        last_step_ = step;
        last_values_.clear();
        for (const progress_value& v : values) last_values_.emplace_back(std::string(v.name), v.value);
        const bool last = total_ > 0 && step >= total_;
        if (bar_) {
            if (last || !drawn_ || now - last_draw_ >= opt_.redraw_interval) draw_bar(step, now - start_, values, last);
        } else if (step / opt_.log_every > last_logged_ / opt_.log_every || (last && last_logged_ < step)) {
            *out_ << status_line(step, now - start_, values) << '\n' << std::flush;
            last_logged_ = step;
        }
    }

    // Shows the last update's state if it was not shown yet, and ends the bar's line.
    void finish() {
        if (opt_.style == progress_style::none) return;
        const double now = opt_.clock();
        std::vector<progress_value> values;
        for (const auto& [name, v] : last_values_) values.push_back({name, v});
        if (bar_) {
            if (line_open_) draw_bar(last_step_, now - start_, values, true);
        } else if (last_logged_ != last_step_) {
            *out_ << status_line(last_step_, now - start_, values) << '\n' << std::flush;
            last_logged_ = last_step_;
        }
    }

    std::int64_t total() const { return total_; }
    bool draws_bar() const { return bar_; }

    // The status text of `step` after `elapsed` seconds, as log lines print it:
    // "label 450/1000 (45%) loss=0.03 | 37.50 it/s, elapsed 00:12, eta 00:14".
    std::string status_line(std::int64_t step, double elapsed, std::span<const progress_value> values) const {
        std::string s = opt_.label.empty() ? std::string() : opt_.label + ' ';
        if (total_ > 0) s += std::to_string(step) + '/' + std::to_string(total_) + " (" + percent(step) + ')';
        else
            s += "step " + std::to_string(step);
        append_values_and_timing(s, step, elapsed, values);
        return s;
    }

    // Steps per second since the start (or initial_step); NaN while unknown.
    double steps_per_second(std::int64_t step, double elapsed) const {
        if (!(elapsed > 0) || step <= opt_.initial_step) return NAN;
        return static_cast<double>(step - opt_.initial_step) / elapsed;
    }

private:
    static bool stderr_is_terminal() {
#if defined(_WIN32)
        return _isatty(_fileno(stderr)) != 0;
#else
        return isatty(STDERR_FILENO) != 0;
#endif
    }

    std::string percent(std::int64_t step) const {
        const std::int64_t p = total_ > 0 ? std::clamp<std::int64_t>(step * 100 / total_, 0, 100) : 0;
        return std::to_string(p) + '%';
    }

    void append_values_and_timing(std::string& s, std::int64_t step, double elapsed,
                                  std::span<const progress_value> values) const {
        if (!values.empty()) s += ' ' + format_values(values);
        const double rate = steps_per_second(step, elapsed);
        s += " | " + format_rate(rate * static_cast<double>(opt_.items_per_step), opt_.unit);
        s += ", elapsed " + format_duration(elapsed);
        if (total_ > 0) s += ", eta " + format_duration(static_cast<double>(total_ - std::min(step, total_)) / rate);
    }

    void draw_bar(std::int64_t step, double elapsed, std::span<const progress_value> values, bool last) {
        std::string s = "\r";
        if (!opt_.label.empty()) s += opt_.label + ' ';
        if (total_ > 0) {
            const std::string pct = percent(step);
            s += std::string(pct.size() < 4 ? 4 - pct.size() : 0, ' ') + pct + " [";
            const std::int64_t width = opt_.bar_width;
            const std::int64_t filled = std::clamp<std::int64_t>(step * width / total_, 0, width);
            s += std::string(static_cast<std::size_t>(filled), '#') +
                 std::string(static_cast<std::size_t>(width - filled), '.');
            s += "] " + std::to_string(step) + '/' + std::to_string(total_);
        } else {
            s += "step " + std::to_string(step);
        }
        append_values_and_timing(s, step, elapsed, values);
        s += "\x1b[K";  // erase what a longer previous line left to the right
        if (last) s += '\n';
        *out_ << s << std::flush;
        drawn_ = true;
        line_open_ = !last;
        last_draw_ = elapsed + start_;
    }

    std::int64_t total_;
    progress_options opt_;
    std::ostream* out_;
    bool bar_ = false;
    bool drawn_ = false;
    bool line_open_ = false;
    double start_ = 0;
    double last_draw_ = 0;
    std::int64_t last_step_ = 0;
    std::int64_t last_logged_ = 0;
    std::vector<std::pair<std::string, double>> last_values_;
};

// ---- Callbacks ------------------------------------------------------------------------------
// A trainer hands events to callback objects: any object with a member on_step(event) and/or
// on_epoch_end(event); the trainer defines the event types. A hook returns void, or bool where
// true asks the trainer to stop early (ensmallen's convention for its callbacks).

// One hook: how to detect it on a type and how to call it. OURO_CALLBACK_HOOK(on_x) defines the
// type on_x_hook (its name, `present<C, Args...>` and `call`) and the constant on_x that trainers
// pass to invoke_if_present. A macro because a member's name cannot be a template argument; the
// trainer's own hooks (diffusion/training_events.hpp) and the loop's (loop/events.hpp) use it too.
#define OURO_CALLBACK_HOOK(hook_name)                               \
    struct hook_name##_hook {                                       \
        static constexpr std::string_view name = #hook_name;        \
        template <class C, class... A>                              \
        static constexpr bool present = requires(C & c, A&&... a) { \
            c.hook_name(std::forward<A>(a)...);                     \
        };                                                          \
        template <class C, class... A>                              \
        static decltype(auto) call(C& c, A&&... a) {                \
            return c.hook_name(std::forward<A>(a)...);              \
        }                                                           \
    };                                                              \
    inline constexpr hook_name##_hook hook_name {}

OURO_CALLBACK_HOOK(on_step);
OURO_CALLBACK_HOOK(on_epoch_end);

// C has `Hook` callable with Args.
template <class C, class Hook, class... Args>
concept has_hook = Hook::template present<C, Args...>;

// A callback for a trainer whose steps emit StepEvent and whose epochs emit EpochEvent: it has
// at least one of the hooks (a type with neither is most likely a misspelt hook).
template <class C, class StepEvent, class EpochEvent = StepEvent>
concept training_callback =
    has_hook<C, on_step_hook, const StepEvent&> || has_hook<C, on_epoch_end_hook, const EpochEvent&>;

// Calls `hook` on `callback` with `args` when the callback has that hook; otherwise does nothing.
// Returns true when the hook asked to stop (it returned true), false otherwise.
template <class Hook, class C, class... Args>
bool invoke_if_present(Hook, C& callback, Args&&... args) {
    if constexpr (Hook::template present<C, Args...>) {
        using result = decltype(Hook::call(callback, std::forward<Args>(args)...));
        if constexpr (std::is_void_v<result>) {
            Hook::call(callback, std::forward<Args>(args)...);
            return false;
        } else {
            static_assert(std::same_as<std::remove_cvref_t<result>, bool>,
                          "a callback hook must return void, or bool where true asks the trainer to stop");
            return Hook::call(callback, std::forward<Args>(args)...);
        }
    } else {
        return false;
    }
}

// Calls `hook` on every callback in `callbacks` (in order, each one, even after one asked to stop)
// with the same `args`; returns true when any of them asked to stop.
template <class Hook, class... Cs, class... Args>
bool invoke_each(Hook hook, const std::tuple<Cs&...>& callbacks, const Args&... args) {
    return std::apply(
        [&](Cs&... cb) {
            bool stop = false;
            ((stop = invoke_if_present(hook, cb, args...) || stop), ...);
            return stop;
        },
        callbacks);
}

}  // namespace ouro
