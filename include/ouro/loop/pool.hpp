// The self-consuming loop's data pool: items (a flat float vector each) with their label, source
// generation (0 real, k sampled from G_{k-1}) and a stable id, so filters can see provenance and
// the loop can report the make-up of each training set.
//
// A pool need not hold every item's floats. Items 0 … resident_begin() − 1 carry only their
// provenance; their floats live elsewhere (for the loop: the real set and the chain's sample files,
// loop/run_files.hpp), so that a step's memory does not grow with the pool (#13). Items added with
// add() are always resident. Modes and filters see provenance and scores only, never floats.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/filter/filter.hpp"

namespace ouro::loop {

class pool {
public:
    // Every item holds `item_size` floats (e.g. C*H*W, or 2 for a 2-D point).
    explicit pool(std::int64_t item_size) : item_size_(item_size) {
        require(item_size > 0, "pool: item size must be positive, found ", item_size);
    }

    // A pool whose items are already laid out in `data`, (labels.size(), item_size) row-major, with
    // ids 0 … n − 1 in order as add() gives them: how a saved pool comes back without a copy.
    pool(std::int64_t item_size, std::vector<float> data, std::span<const std::int64_t> labels,
         std::span<const std::int64_t> generations)
        : pool(item_size) {
        const auto n = static_cast<std::int64_t>(labels.size());
        if (static_cast<std::int64_t>(data.size()) != n * item_size_ || static_cast<std::int64_t>(generations.size()) != n)
            fail("pool: expected ", n * item_size_, " floats and ", n, " generations for ", n, " items of ", item_size_,
                 ", found ", data.size(), " and ", generations.size());
        for (const std::int64_t g : generations) require(g >= 0, "pool: generation must be >= 0, found ", g);
        data_ = std::move(data);
        labels_.assign(labels.begin(), labels.end());
        generations_.assign(generations.begin(), generations.end());
        for (std::int64_t i = 0; i < n; ++i) ids_.push_back(next_id_++);
    }

    // A pool of labels.size() items whose floats are held elsewhere (none resident: resident_begin()
    // == size()), ids 0 … n − 1 in order; add() appends resident items after them.
    static pool without_floats(std::int64_t item_size, std::span<const std::int64_t> labels,
                               std::span<const std::int64_t> generations) {
        pool p(item_size);
        const auto n = static_cast<std::int64_t>(labels.size());
        if (static_cast<std::int64_t>(generations.size()) != n)
            fail("pool: expected ", n, " generations for ", n, " items, found ", generations.size());
        for (const std::int64_t g : generations) require(g >= 0, "pool: generation must be >= 0, found ", g);
        p.labels_.assign(labels.begin(), labels.end());
        p.generations_.assign(generations.begin(), generations.end());
        for (std::int64_t i = 0; i < n; ++i) p.ids_.push_back(p.next_id_++);
        p.resident_begin_ = n;
        return p;
    }

    // Appends a generation's items; `data` holds labels.size() * item_size() floats.
    // Returns the index of the first new item.
    std::int64_t add(std::span<const float> data, std::span<const std::int64_t> labels, std::int64_t generation) {
        const auto n = static_cast<std::int64_t>(labels.size());
        if (static_cast<std::int64_t>(data.size()) != n * item_size_)
            fail("pool::add: expected ", n * item_size_, " floats (", n, " items x ", item_size_, "), found ",
                 data.size());
        require(generation >= 0, "pool::add: generation must be >= 0, found ", generation);
        const std::int64_t first = size();
        data_.insert(data_.end(), data.begin(), data.end());
        for (std::int64_t i = 0; i < n; ++i) {
            labels_.push_back(labels[static_cast<std::size_t>(i)]);
            generations_.push_back(generation);
            ids_.push_back(next_id_++);
        }
        return first;
    }

    // Room for `items` items in all, so that adding up to that many copies nothing: a pool restored
    // for one step is reserved for the step's S_k too (its resident set grows by the pool once, #13).
    void reserve(std::int64_t items) {
        require(items >= 0, "pool::reserve: expected a count >= 0, found ", items);
        data_.reserve(static_cast<std::size_t>(std::max<std::int64_t>(items - resident_begin_, 0) * item_size_));
        labels_.reserve(static_cast<std::size_t>(items));
        generations_.reserve(static_cast<std::size_t>(items));
        ids_.reserve(static_cast<std::size_t>(items));
    }

    std::int64_t size() const { return static_cast<std::int64_t>(labels_.size()); }
    // The first item whose floats this pool holds (0 unless built by without_floats).
    std::int64_t resident_begin() const { return resident_begin_; }
    bool holds(std::int64_t i) const { return i >= resident_begin_ && i < size(); }
    // Every item's floats, item after item: (size, item_size) row-major. Requires every item resident.
    std::span<const float> data() const {
        if (resident_begin_ > 0)
            fail("pool::data: items 0 … ", resident_begin_ - 1,
                 " are not held in memory (their floats stay in their files); use resident_data()");
        return data_;
    }
    // The resident items' floats: (size − resident_begin, item_size) row-major.
    std::span<const float> resident_data() const { return data_; }
    std::int64_t item_size() const { return item_size_; }
    std::span<const float> item(std::int64_t i) const {
        check_index(i);
        if (i < resident_begin_)
            fail("pool: item ", i, "'s floats are not held in memory (items 0 … ", resident_begin_ - 1,
                 " stay in their files; the loop reads the ones it chooses with detail::gather_pool_items)");
        return {data_.data() + (i - resident_begin_) * item_size_, static_cast<std::size_t>(item_size_)};
    }
    std::int64_t label(std::int64_t i) const {
        check_index(i);
        return labels_[static_cast<std::size_t>(i)];
    }
    std::int64_t generation(std::int64_t i) const {
        check_index(i);
        return generations_[static_cast<std::size_t>(i)];
    }
    std::int64_t id(std::int64_t i) const {
        check_index(i);
        return ids_[static_cast<std::size_t>(i)];
    }
    std::span<const std::int64_t> labels() const { return labels_; }
    std::span<const std::int64_t> generations() const { return generations_; }
    std::span<const std::int64_t> ids() const { return ids_; }

    // The newest generation present (-1 when empty).
    std::int64_t latest_generation() const {
        std::int64_t g = -1;
        for (auto v : generations_) g = v > g ? v : g;
        return g;
    }

    // Items per generation: entry g counts generation g (size latest_generation() + 1).
    std::vector<std::int64_t> counts_per_generation() const {
        std::vector<std::int64_t> out(static_cast<std::size_t>(latest_generation() + 1), 0);
        for (auto g : generations_) ++out[static_cast<std::size_t>(g)];
        return out;
    }

    // What filter policies see; `scores` is empty or holds one score per item.
    filter::pool_view view(std::span<const double> scores = {}) const {
        if (!scores.empty() && static_cast<std::int64_t>(scores.size()) != size())
            fail("pool::view: expected ", size(), " scores (one per item), found ", scores.size());
        return {scores, labels_, generations_, ids_};
    }

    // Copies the chosen items, in order, into `data` (items.size() * item_size floats) and their
    // labels into `labels` (items.size()): how the loop builds T_k straight into the training set it
    // trains on, with no copy in between.
    void gather_into(std::span<const std::int64_t> items, std::span<float> data, std::span<std::int64_t> labels) const {
        if (data.size() != items.size() * static_cast<std::size_t>(item_size_) || labels.size() != items.size())
            fail("pool::gather_into: expected room for ", items.size(), " items of ", item_size_, " floats and ",
                 items.size(), " labels, found ", data.size(), " floats and ", labels.size(), " labels");
        float* out = data.data();
        for (std::size_t k = 0; k < items.size(); ++k) {
            const auto x = item(items[k]);
            out = std::copy(x.begin(), x.end(), out);
            labels[k] = labels_[static_cast<std::size_t>(items[k])];
        }
    }

    // A training set: the chosen items' data (items.size() * item_size floats) and labels, in order.
    struct training_set {
        std::vector<float> data;
        std::vector<std::int64_t> labels;
        std::vector<std::int64_t> generations;
    };
    training_set gather(std::span<const std::int64_t> items) const {
        training_set out;
        out.data.resize(items.size() * static_cast<std::size_t>(item_size_));
        out.labels.resize(items.size());
        gather_into(items, out.data, out.labels);
        for (auto i : items) out.generations.push_back(generations_[static_cast<std::size_t>(i)]);
        return out;
    }

private:
    void check_index(std::int64_t i) const {
        if (i < 0 || i >= size()) fail("pool: item index ", i, " out of range [0, ", size(), ")");
    }

    std::int64_t item_size_;
    std::int64_t next_id_ = 0;
    std::int64_t resident_begin_ = 0;
    std::vector<float> data_;  // (size − resident_begin, item_size): the resident items
    std::vector<std::int64_t> labels_, generations_, ids_;
};

}  // namespace ouro::loop
