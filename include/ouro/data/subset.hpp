// Subsets of an in-memory image dataset: chosen rows, or the first items of each class (how the
// experiment draws its real set D_r and its reference set from a file's order).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ouro/core/error.hpp"
#include "ouro/data/mnist.hpp"

namespace ouro::data {

// The rows `rows` of `set`, in that order, named `name`.
inline image_dataset subset(const image_dataset& set, std::span<const std::int64_t> rows, std::string name) {
    image_dataset out;
    out.name = std::move(name);
    out.num_classes = set.num_classes;
    const std::int64_t item = set.channels() * set.height() * set.width(), n = static_cast<std::int64_t>(rows.size());
    out.images = tensor<float>(shape{n, set.channels(), set.height(), set.width()});
    out.labels = tensor<std::int64_t>(shape{n});
    for (std::int64_t j = 0; j < n; ++j) {
        const std::int64_t i = rows[static_cast<std::size_t>(j)];
        require(i >= 0 && i < set.size(), "data::subset: row ", i, " is outside '", set.name, "' of ", set.size(),
                " images");
        std::copy_n(set.images.data() + i * item, item, out.images.data() + j * item);
        out.labels[j] = set.labels[i];
    }
    return out;
}

// The first `per_class` items of each class of `set`, in file order; every class must have that many.
inline image_dataset first_per_class(const image_dataset& set, std::int64_t per_class, std::string name) {
    std::vector<std::int64_t> keep, taken(static_cast<std::size_t>(set.num_classes), 0);
    for (std::int64_t i = 0; i < set.size(); ++i)
        if (taken[static_cast<std::size_t>(set.labels[i])]++ < per_class) keep.push_back(i);
    for (std::int64_t c = 0; c < set.num_classes; ++c)
        require(taken[static_cast<std::size_t>(c)] >= per_class, "data set '", set.name, "' has only ",
                taken[static_cast<std::size_t>(c)], " images of class ", c, ", ", per_class, " are needed");
    return subset(set, keep, std::move(name));
}

}  // namespace ouro::data
