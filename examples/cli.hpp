// The examples' command lines, on CLI11 (Debian libcli11-dev): every example answers --help (flags,
// defaults, units) and --version, and refuses an unknown flag or a malformed or out-of-range value
// in one line that names the flag, before any work starts.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "ouro/core/error.hpp"
#include "ouro/core/version.hpp"

namespace examples {

// An app named `name` with --help and --version.
inline void setup(CLI::App& app) {
    app.set_version_flag("--version", std::string("ouro ") + ouro::version);
    app.option_defaults()->always_capture_default();
    app.get_formatter()->column_width(34);
}

// Parses argv into `app`'s options. Returns -1 to go on, or the exit code: 0 after --help or
// --version, 2 after a bad command line (one line on stderr naming the flag, and a pointer to --help).
inline int parse(CLI::App& app, int argc, char** argv) {
    try {
        app.parse(argc, argv);
        return -1;
    } catch (const CLI::CallForHelp&) {
        std::fputs(app.help().c_str(), stdout);
        return 0;
    } catch (const CLI::CallForVersion&) {
        std::printf("%s\n", app.version().c_str());
        return 0;
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "%s: error: %s (run with --help for the flags)\n", app.get_name().c_str(), e.what());
        return 2;
    }
}

// Whole numbers that fit an int64 ("12abc" and 2^63 are refused, not cut or wrapped).
inline const CLI::Validator whole_number = CLI::Validator(
    [](std::string& text) -> std::string {
        std::int64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec == std::errc() && end == text.data() + text.size() && !text.empty()) return {};
        return "expected a whole number, found '" + text + "'";
    },
    "INT");

// Whole numbers >= 0 that fit a uint64: "-1" is refused rather than wrapped to 2^64 - 1.
inline const CLI::Validator unsigned_integer = CLI::Validator(
    [](std::string& text) -> std::string {
        std::uint64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec == std::errc() && end == text.data() + text.size() && !text.empty() && text[0] != '-') return {};
        return "expected a whole number from 0 to 2^64 - 1, found '" + text + "'";
    },
    "UINT");

// Whole numbers in [lo, hi].
inline CLI::Validator whole_in(std::int64_t lo, std::int64_t hi) {
    return CLI::Validator(
        [lo, hi](std::string& text) -> std::string {
            std::int64_t v = 0;
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
            if (ec == std::errc() && end == text.data() + text.size() && !text.empty() && v >= lo && v <= hi) return {};
            return "expected a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) + ", found '" +
                   text + "'";
        },
        "INT in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

// Finite numbers >= lo.
inline CLI::Validator finite_at_least(double lo) {
    return CLI::Validator(
        [lo](std::string& text) -> std::string {
            try {
                std::size_t used = 0;
                const double v = std::stod(text, &used);
                if (used == text.size() && std::isfinite(v) && v >= lo) return {};
            } catch (const std::exception&) {
            }
            return "expected a finite number >= " + CLI::detail::to_string(lo) + ", found '" + text + "'";
        },
        "FLOAT >= " + CLI::detail::to_string(lo));
}

// Finite numbers > lo (a learning rate of 0 would train nothing).
inline CLI::Validator finite_above(double lo) {
    return CLI::Validator(
        [lo](std::string& text) -> std::string {
            try {
                std::size_t used = 0;
                const double v = std::stod(text, &used);
                if (used == text.size() && std::isfinite(v) && v > lo) return {};
            } catch (const std::exception&) {
            }
            return "expected a finite number > " + CLI::detail::to_string(lo) + ", found '" + text + "'";
        },
        "FLOAT > " + CLI::detail::to_string(lo));
}

// Finite numbers in [lo, hi].
inline CLI::Validator finite_in(double lo, double hi) {
    return CLI::Validator(
        [lo, hi](std::string& text) -> std::string {
            try {
                std::size_t used = 0;
                const double v = std::stod(text, &used);
                if (used == text.size() && std::isfinite(v) && v >= lo && v <= hi) return {};
            } catch (const std::exception&) {
            }
            return "expected a finite number from " + CLI::detail::to_string(lo) + " to " + CLI::detail::to_string(hi) +
                   ", found '" + text + "'";
        },
        "FLOAT in [" + CLI::detail::to_string(lo) + ", " + CLI::detail::to_string(hi) + "]");
}

// Runs `body` and turns its errors into one line and exit code 2 (ouro::error) or 1 (anything else).
template <class Body>
int run_reporting_errors(const char* name, Body&& body) {
    try {
        return body();
    } catch (const ouro::error& e) {
        std::fprintf(stderr, "%s: error: %s\n", name, e.what());
        return 2;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "%s: error: out of memory\n", name);
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: error: %s\n", name, e.what());
        return 1;
    }
}

}  // namespace examples
