// safetensors files (Hugging Face's format): model checkpoints from a parameter_store and named
// tensors of trainer state (F32, F64, I32, I64, U8), written atomically, in the byte layout of the
// reference serializer, and read back with clear errors for every way a file can fail to fit.
//
// Format (github.com/huggingface/safetensors, README and safetensors/src/tensor.rs):
//   8 bytes   N, little-endian u64: length of the header
//   N bytes   UTF-8 JSON object {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [..],
//             "data_offsets": [begin, end]}, ...}, padded with spaces to a multiple of 8
//   rest      the data section: each tensor's little-endian C-order bytes at [begin, end)
// The reference reader accepts a file only if the tensors, sorted by offset, tile the data
// section exactly (no gap, no overlap, nothing after the last one) and each holds
// numel * dtype size bytes; this reader enforces the same rules, so whatever it accepts, Python's
// `safetensors` accepts too.
//
// Integrity: a writer asked to (set_data_checksum) stores the CRC-32 of the data section in the
// metadata key "data_crc32" (8 hex digits); every reader that finds the key verifies it when it
// opens the file, so a bit flip or an edit of the weights that left the header alone is refused.
// The key is plain metadata: Python's safetensors reads such files as any other.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <zlib.h>
#include <nlohmann/json.hpp>

#include "ouro/core/error.hpp"
#include "ouro/core/parameter_store.hpp"
#include "ouro/core/shape.hpp"
#include "ouro/core/tensor.hpp"
#include "ouro/io/atomic_file.hpp"

namespace ouro::io {

static_assert(std::endian::native == std::endian::little,
              "ouro/io/safetensors.hpp copies tensor bytes as they are: it needs a little-endian host");

// Element types of the format, in the reference's order of increasing alignment: its serializer
// lays tensors out by this order, descending, so every tensor starts aligned to its element size.
// (Later versions add sub-byte and complex types; the relative order of these stays the same.)
enum class safetensors_dtype : std::uint8_t {
    boolean,
    u8,
    i8,
    f8_e5m2,
    f8_e4m3,
    i16,
    u16,
    f16,
    bf16,
    i32,
    u32,
    f32,
    f64,
    i64,
    u64
};

namespace detail {
struct safetensors_dtype_info {
    safetensors_dtype dtype;
    std::string_view name;
    std::uint64_t size;
};
inline constexpr std::array<safetensors_dtype_info, 15> safetensors_dtypes{{
    {safetensors_dtype::boolean, "BOOL", 1},
    {safetensors_dtype::u8, "U8", 1},
    {safetensors_dtype::i8, "I8", 1},
    {safetensors_dtype::f8_e5m2, "F8_E5M2", 1},
    {safetensors_dtype::f8_e4m3, "F8_E4M3", 1},
    {safetensors_dtype::i16, "I16", 2},
    {safetensors_dtype::u16, "U16", 2},
    {safetensors_dtype::f16, "F16", 2},
    {safetensors_dtype::bf16, "BF16", 2},
    {safetensors_dtype::i32, "I32", 4},
    {safetensors_dtype::u32, "U32", 4},
    {safetensors_dtype::f32, "F32", 4},
    {safetensors_dtype::f64, "F64", 8},
    {safetensors_dtype::i64, "I64", 8},
    {safetensors_dtype::u64, "U64", 8},
}};
}  // namespace detail

// The dtype's name in the header, e.g. "F32".
constexpr std::string_view dtype_name(safetensors_dtype d) {
    return detail::safetensors_dtypes[static_cast<std::size_t>(d)].name;
}

// Bytes per element.
constexpr std::uint64_t dtype_size(safetensors_dtype d) {
    return detail::safetensors_dtypes[static_cast<std::size_t>(d)].size;
}

// The dtype named `name` in a header, if the format has one.
constexpr std::optional<safetensors_dtype> parse_safetensors_dtype(std::string_view name) {
    for (const auto& info : detail::safetensors_dtypes)
        if (info.name == name) return info.dtype;
    return std::nullopt;
}

// C++ element types that ouro reads and writes, and their dtypes.
template <class T>
concept safetensors_element = std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, std::int32_t> ||
    std::same_as<T, std::int64_t> || std::same_as<T, std::uint8_t>;

template <safetensors_element T>
inline constexpr safetensors_dtype safetensors_dtype_of = std::same_as<T, float>          ? safetensors_dtype::f32
                                                          : std::same_as<T, double>       ? safetensors_dtype::f64
                                                          : std::same_as<T, std::int32_t> ? safetensors_dtype::i32
                                                          : std::same_as<T, std::int64_t> ? safetensors_dtype::i64
                                                                                          : safetensors_dtype::u8;

// The file-level "__metadata__": free-form string pairs (ouro stores the model spec, step, seed).
using safetensors_metadata = std::map<std::string, std::string>;

// One tensor as the header describes it.
struct safetensors_entry {
    std::string name;
    safetensors_dtype dtype = safetensors_dtype::f32;
    shape dims;
    std::uint64_t begin = 0;  // byte offsets into the data section, [begin, end)
    std::uint64_t end = 0;
};

// The reference reader refuses headers above 100 MB (tensor.rs MAX_HEADER_SIZE); so do we, which
// also tells a file of another kind (whose first 8 bytes read as a huge length) from a truncated one.
inline constexpr std::uint64_t safetensors_max_header_bytes = 100'000'000;

// The deepest nesting of arrays and objects accepted in a JSON text, here and in ouro's other JSON
// files (which nest 3 levels at most). nlohmann's parser is iterative, but copying, comparing and
// dumping a value recurse: a header of 10^5 nested brackets (400 KB, well within the size limit)
// would overflow the stack there.
inline constexpr std::size_t json_max_depth = 128;

namespace detail {
// The deepest nesting of arrays and objects in the JSON `text`; brackets inside strings do not
// count. A scan of the text, so that nothing recurses before the depth is known.
inline std::size_t json_nesting_depth(std::string_view text) {
    std::size_t depth = 0, deepest = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') ++i;  // the escaped character cannot end the string
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}
}  // namespace detail

// The metadata key of the data section's CRC-32 (see the top of this file).
inline constexpr const char* safetensors_checksum_key = "data_crc32";

// Whether a reader verifies "data_crc32" when it opens a file (it reads the whole data section
// once); metadata-only readers skip it.
enum class verify_checksum : bool { no, yes };

namespace detail {
inline shape shape_from_extents(const std::vector<std::int64_t>& e) {
    switch (e.size()) {
        case 0: return shape{};
        case 1: return shape{e[0]};
        case 2: return shape{e[0], e[1]};
        case 3: return shape{e[0], e[1], e[2]};
        case 4: return shape{e[0], e[1], e[2], e[3]};
        case 5: return shape{e[0], e[1], e[2], e[3], e[4]};
        case 6: return shape{e[0], e[1], e[2], e[3], e[4], e[5]};
        default: fail("shape: rank ", e.size(), " is above ", shape::max_rank);
    }
}

inline std::uint64_t read_u64_le(const unsigned char* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// Collects every mismatch between a file and what the caller expects, so that one error names
// them all (a renamed parameter shows up as one missing and one unexpected tensor side by side).
class mismatch_list {
public:
    template <class... Parts>
    void add(Parts&&... parts) {
        items_.push_back(ouro::detail::concat(std::forward<Parts>(parts)...));
    }
    bool empty() const { return items_.empty(); }
    [[noreturn]] void raise(const std::string& head) const {
        constexpr std::size_t shown = 12;
        std::string msg = head;
        for (std::size_t i = 0; i < items_.size() && i < shown; ++i) msg += "\n  " + items_[i];
        if (items_.size() > shown) msg += ouro::detail::concat("\n  ... and ", items_.size() - shown, " more");
        fail(msg);
    }

private:
    std::vector<std::string> items_;
};
}  // namespace detail

namespace detail {
inline std::string crc_hex(std::uint32_t crc) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(8, '0');
    for (int i = 7; i >= 0; --i, crc >>= 4) out[static_cast<std::size_t>(i)] = digits[crc & 0xf];
    return out;
}
}  // namespace detail

// Reads a safetensors file. The constructor reads and validates the header against the file's
// size; tensors are read on demand. Not thread-safe (one stream, moved by every read).
class safetensors_reader {
public:
    // Requires: `file` exists and is a valid safetensors file (see the rules at the top).
    explicit safetensors_reader(const std::filesystem::path& file, verify_checksum verify = verify_checksum::yes)
        : path_(file) {
        namespace fs = std::filesystem;
        const std::string p = path_.string();
        std::error_code ec;
        if (!fs::exists(path_, ec)) fail(p, ": cannot open safetensors file: no such file");
        const std::uintmax_t file_size = fs::file_size(path_, ec);
        if (ec) fail(p, ": cannot open safetensors file: ", ec.message());
        in_.open(path_, std::ios::binary);
        if (!in_) fail(p, ": cannot open safetensors file for reading");
        if (file_size < 8)
            fail(p, ": not a safetensors file: it has ", file_size, " bytes, fewer than the 8-byte header length");

        unsigned char len_bytes[8];
        read_exactly(reinterpret_cast<char*>(len_bytes), 8, "the header length");
        const std::uint64_t n = detail::read_u64_le(len_bytes);
        if (n > safetensors_max_header_bytes)
            fail(p, ": not a safetensors file: its first 8 bytes give a header length of ", n,
                 " bytes, above the format's limit of ", safetensors_max_header_bytes);
        if (n > file_size - 8)
            fail(p, ": truncated safetensors file: the header length says ", n, " bytes, but only ", file_size - 8,
                 " bytes follow it");
        std::string text(static_cast<std::size_t>(n), '\0');
        read_exactly(text.data(), n, "the header");
        data_start_ = 8 + n;
        data_size_ = file_size - 8 - n;
        parse_header(text);
        if (verify == verify_checksum::yes && has_data_checksum()) check_data_checksum();
    }

    // Whether the file carries the CRC-32 of its data ("data_crc32" in its metadata).
    bool has_data_checksum() const { return metadata_.contains(safetensors_checksum_key); }

    // Requires the file to carry a data checksum (verified when the reader opened it); for files
    // that ouro itself wrote with one, where its absence means the file was replaced.
    void require_data_checksum() const {
        if (!has_data_checksum())
            fail(path_.string(), ": expected a file written by ouro with the CRC-32 of its data (metadata '",
                 safetensors_checksum_key, "'), found none; the file was replaced or written by another program");
    }

    const std::filesystem::path& path() const { return path_; }
    const safetensors_metadata& metadata() const { return metadata_; }
    // All tensors, in the order of their data.
    const std::vector<safetensors_entry>& entries() const { return entries_; }

    // The tensor named `name`, or nullptr.
    const safetensors_entry* find(std::string_view name) const {
        for (const safetensors_entry& e : entries_)
            if (e.name == name) return &e;
        return nullptr;
    }
    bool contains(std::string_view name) const { return find(name) != nullptr; }

    // The tensor named `name`; throws naming the file if there is none.
    const safetensors_entry& at(std::string_view name) const {
        const safetensors_entry* e = find(name);
        if (!e) fail(path_.string(), ": no tensor named '", name, "' in the file");
        return *e;
    }

    // Reads tensor `name` into a new tensor. Requires its dtype to be exactly T's (no conversion:
    // a checkpoint of another precision is an error, not a silent cast).
    template <safetensors_element T>
    tensor<T> read(std::string_view name) {
        const safetensors_entry& e = at(name);
        require_dtype<T>(e);
        tensor<T> out(e.dims);
        read_bytes(e, out.data());
        return out;
    }

    // Reads tensor `name` into `out`. Requires its dtype to be T's and its shape to be out's.
    template <safetensors_element T>
    void read_into(std::string_view name, tensor_view<T> out) {
        const safetensors_entry& e = at(name);
        require_dtype<T>(e);
        if (!(e.dims == out.dims()))
            fail(path_.string(), ": tensor '", e.name, "': expected shape ", out.dims(), ", found ", e.dims,
                 " in the file");
        read_bytes(e, out.data());
    }

    // Reads rows first … first + rows − 1 of tensor `name` (rows along its first dimension) into
    // `out`, whose shape is the tensor's with that first dimension: a part of a large tensor without
    // reading the rest.
    template <safetensors_element T>
    void read_rows_into(std::string_view name, std::int64_t first, tensor_view<T> out) {
        const safetensors_entry& e = at(name);
        require_dtype<T>(e);
        const std::int64_t rows = out.rank() >= 1 ? out.dim(0) : -1;
        bool same_rest = e.dims.rank() == out.rank() && e.dims.rank() >= 1;
        for (int d = 1; same_rest && d < e.dims.rank(); ++d) same_rest = e.dims[d] == out.dim(d);
        if (!same_rest || first < 0 || rows < 0 || first > e.dims[0] - rows)
            fail(path_.string(), ": tensor '", e.name, "' of shape ", e.dims, ": cannot read ", rows, " rows from row ",
                 first, " into shape ", out.dims());
        const std::uint64_t row_bytes = e.dims[0] == 0 ? 0 : (e.end - e.begin) / static_cast<std::uint64_t>(e.dims[0]);
        in_.clear();
        in_.seekg(static_cast<std::streamoff>(data_start_ + e.begin + static_cast<std::uint64_t>(first) * row_bytes));
        read_exactly(reinterpret_cast<char*>(out.data()), static_cast<std::uint64_t>(rows) * row_bytes,
                     "tensor '" + e.name + "'");
    }

    // Copies the raw bytes of `e` (end - begin of them) to `dst`.
    void read_bytes(const safetensors_entry& e, void* dst) {
        in_.clear();
        in_.seekg(static_cast<std::streamoff>(data_start_ + e.begin));
        read_exactly(static_cast<char*>(dst), e.end - e.begin, "tensor '" + e.name + "'");
    }

private:
    void check_data_checksum() {
        const std::string& recorded = metadata_.at(safetensors_checksum_key);
        std::uint32_t crc = 0;
        std::vector<char> block(std::size_t{1} << 20);
        in_.clear();
        in_.seekg(static_cast<std::streamoff>(data_start_));
        for (std::uint64_t left = data_size_; left > 0;) {
            const std::uint64_t n = std::min<std::uint64_t>(left, block.size());
            read_exactly(block.data(), n, "the data section");
            crc = static_cast<std::uint32_t>(
                crc32_z(crc, reinterpret_cast<const Bytef*>(block.data()), static_cast<z_size_t>(n)));
            left -= n;
        }
        const std::string found = detail::crc_hex(crc);
        if (found != recorded)
            fail(path_.string(), ": corrupt safetensors file: the CRC-32 of its data is ", found,
                 ", its header records ", recorded, " (the data changed after the file was written)");
    }

    void read_exactly(char* dst, std::uint64_t n, const std::string& what) {
        if (n == 0) return;
        in_.read(dst, static_cast<std::streamsize>(n));
        if (static_cast<std::uint64_t>(in_.gcount()) != n)
            fail(path_.string(), ": truncated safetensors file: reading ", what, " (", n, " bytes) failed after ",
                 in_.gcount(), " bytes");
    }

    template <safetensors_element T>
    void require_dtype(const safetensors_entry& e) const {
        if (e.dtype != safetensors_dtype_of<T>)
            fail(path_.string(), ": tensor '", e.name, "': expected dtype ", dtype_name(safetensors_dtype_of<T>),
                 ", found ", dtype_name(e.dtype), " in the file");
    }

    [[noreturn]] void malformed(const std::string& why) const {
        fail(path_.string(), ": not a safetensors file: ", why);
    }

    void parse_header(const std::string& text) {
        using json = nlohmann::json;
        // Newer reference readers insist on '{' as the first byte (InvalidHeaderStart).
        if (text.empty() || text[0] != '{') malformed("its header does not start with '{'");
        if (const std::size_t depth = detail::json_nesting_depth(text); depth > json_max_depth)
            malformed(ouro::detail::concat("its header nests arrays and objects ", depth, " levels deep, more than ",
                                           json_max_depth));
        json header;
        try {
            header = json::parse(text);
        } catch (const json::exception& e) {
            malformed(ouro::detail::concat("its header is not valid JSON (", e.what(), ")"));
        }
        if (!header.is_object()) malformed("its header is not a JSON object");

        for (const auto& [key, value] : header.items()) {
            if (key == "__metadata__") {
                if (!value.is_object()) malformed("\"__metadata__\" is not a JSON object");
                for (const auto& [mk, mv] : value.items()) {
                    if (!mv.is_string())
                        malformed(ouro::detail::concat("\"__metadata__\" value of '", mk, "' is not a string"));
                    metadata_.emplace(mk, mv.get<std::string>());
                }
                continue;
            }
            entries_.push_back(parse_entry(key, value));
        }

        std::sort(entries_.begin(), entries_.end(), [](const safetensors_entry& a, const safetensors_entry& b) {
            return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
        });
        // Truncation first: a cut-off file shows up as offsets past the end, whatever else is wrong.
        for (const safetensors_entry& e : entries_)
            if (e.end > data_size_)
                fail(path_.string(), ": truncated safetensors file: tensor '", e.name, "' has data_offsets [", e.begin,
                     ", ", e.end, "], past the end of the ", data_size_, "-byte data section");
        std::uint64_t expected_begin = 0;
        for (const safetensors_entry& e : entries_) {
            if (e.begin != expected_begin)
                malformed(ouro::detail::concat("tensor '", e.name, "' starts at byte ", e.begin,
                                               " of the data section, expected ", expected_begin,
                                               " (tensors must tile the data without gaps or overlaps)"));
            expected_begin = e.end;
        }
        if (expected_begin != data_size_)
            malformed(ouro::detail::concat("the data section has ", data_size_ - expected_begin,
                                           " bytes after its last tensor (ends at ", expected_begin, ")"));
    }

    safetensors_entry parse_entry(const std::string& name, const nlohmann::json& value) const {
        if (!value.is_object())
            malformed(ouro::detail::concat("the header entry of tensor '", name, "' is not a JSON object"));
        safetensors_entry e;
        e.name = name;

        const auto dtype_it = value.find("dtype");
        if (dtype_it == value.end() || !dtype_it->is_string())
            malformed(ouro::detail::concat("tensor '", name, "' has no \"dtype\" string"));
        const std::string dtype = dtype_it->get<std::string>();
        const std::optional<safetensors_dtype> d = parse_safetensors_dtype(dtype);
        if (!d)
            malformed(ouro::detail::concat("tensor '", name, "' has dtype '", dtype, "', which ouro does not know"));
        e.dtype = *d;

        const auto shape_it = value.find("shape");
        if (shape_it == value.end() || !shape_it->is_array())
            malformed(ouro::detail::concat("tensor '", name, "' has no \"shape\" array"));
        std::vector<std::int64_t> extents;
        std::uint64_t numel = 1;
        bool overflow = false;
        for (const auto& x : *shape_it) {
            if (!x.is_number_unsigned())
                malformed(ouro::detail::concat("tensor '", name,
                                               "' has a shape entry that is not a non-negative integer: ", x.dump()));
            const std::uint64_t v = x.get<std::uint64_t>();
            if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
                (v != 0 && numel > std::numeric_limits<std::uint64_t>::max() / v))
                overflow = true;
            else
                numel *= v;
            extents.push_back(static_cast<std::int64_t>(v));
        }
        if (extents.size() > static_cast<std::size_t>(shape::max_rank))
            fail(path_.string(), ": tensor '", name, "' has rank ", extents.size(), ", above ouro's limit of ",
                 shape::max_rank);
        if (overflow || numel > std::numeric_limits<std::uint64_t>::max() / dtype_size(e.dtype))
            malformed(ouro::detail::concat("tensor '", name, "' has a shape whose byte count overflows 64 bits"));
        e.dims = detail::shape_from_extents(extents);

        const auto off_it = value.find("data_offsets");
        if (off_it == value.end() || !off_it->is_array() || off_it->size() != 2 || !(*off_it)[0].is_number_unsigned() ||
            !(*off_it)[1].is_number_unsigned())
            malformed(
                ouro::detail::concat("tensor '", name, "' has no \"data_offsets\" pair of non-negative integers"));
        e.begin = (*off_it)[0].get<std::uint64_t>();
        e.end = (*off_it)[1].get<std::uint64_t>();
        const std::uint64_t nbytes = numel * dtype_size(e.dtype);
        if (e.end < e.begin || e.end - e.begin != nbytes)
            malformed(ouro::detail::concat("tensor '", name, "' of dtype ", dtype, " and shape ", e.dims, " needs ",
                                           nbytes, " bytes, but its data_offsets [", e.begin, ", ", e.end, "] span ",
                                           e.end >= e.begin ? e.end - e.begin : 0));
        return e;
    }

    std::filesystem::path path_;
    std::ifstream in_;
    std::uint64_t data_start_ = 0;
    std::uint64_t data_size_ = 0;
    safetensors_metadata metadata_;
    std::vector<safetensors_entry> entries_;
};

// Collects named tensors and metadata, then writes one safetensors file. It keeps views, not
// copies: every added tensor must stay alive and unchanged until serialize() or write() returns.
class safetensors_writer {
public:
    // Adds `t` under `name`. Requires a name not yet used and not "__metadata__".
    template <class T>
    requires safetensors_element<std::remove_const_t<T>>
    void add(std::string name, tensor_view<T> t) {
        using E = std::remove_const_t<T>;
        add_raw(std::move(name), safetensors_dtype_of<E>, t.dims(), t.data());
    }
    template <safetensors_element T>
    void add(std::string name, const tensor<T>& t) {
        add(std::move(name), t.view());
    }
    // A temporary would be gone before write(): keep the tensor in a variable.
    template <safetensors_element T>
    void add(std::string name, tensor<T>&& t) = delete;

    // Adds a tensor from raw little-endian bytes (numel(dims) * dtype_size(dtype) of them at `data`).
    void add_raw(std::string name, safetensors_dtype dtype, const shape& dims, const void* data) {
        if (name == "__metadata__") fail("safetensors_writer: '__metadata__' is reserved and cannot name a tensor");
        for (const item& it : items_)
            if (it.name == name) fail("safetensors_writer: a tensor named '", name, "' was already added");
        items_.push_back({std::move(name), dtype, dims, static_cast<const char*>(data)});
    }

    // Sets metadata `key` to `value` (replacing an earlier value).
    void set_metadata(std::string key, std::string value) { metadata_[std::move(key)] = std::move(value); }

    // Stores the CRC-32 of the data section as metadata "data_crc32", so that every reader
    // verifies the data it loads (see the top of this file).
    void set_data_checksum(bool on = true) { checksum_ = on; }
    void set_metadata(const safetensors_metadata& m) {
        for (const auto& [k, v] : m) metadata_[k] = v;
    }

    std::size_t size() const { return items_.size(); }

    // The file as consecutive pieces: its first 8 + header bytes (kept in `head`, which must outlive
    // the pieces), then each tensor's bytes, viewed where the tensor lives. Tensors are laid out by
    // dtype alignment (descending), then by name, and the header is compact JSON with
    // "__metadata__" first, padded with spaces to a multiple of 8: the reference serializer's layout, so a file written here is byte for byte the file that
    // safetensors.torch.save_file writes for the same tensors (metadata keys in sorted order).
    std::vector<std::string_view> pieces(std::string& head) const {
        std::vector<const item*> order;
        for (const item& it : items_) order.push_back(&it);
        std::sort(order.begin(), order.end(), [](const item* a, const item* b) {
            if (a->dtype != b->dtype) return a->dtype > b->dtype;
            return a->name < b->name;
        });

        safetensors_metadata metadata = metadata_;
        if (checksum_) {
            std::uint32_t crc = 0;
            for (const item* it : order)
                crc = static_cast<std::uint32_t>(
                    crc32_z(crc, reinterpret_cast<const Bytef*>(it->data),
                            static_cast<z_size_t>(it->dims.bytes(static_cast<std::int64_t>(dtype_size(it->dtype))))));
            metadata[safetensors_checksum_key] = detail::crc_hex(crc);
        }
        using ojson = nlohmann::ordered_json;
        ojson header = ojson::object();
        if (!metadata.empty()) {
            ojson m = ojson::object();
            for (const auto& [k, v] : metadata) m[k] = v;
            header["__metadata__"] = std::move(m);
        }
        std::uint64_t offset = 0;
        for (const item* it : order) {
            const std::uint64_t nbytes = static_cast<std::uint64_t>(it->dims.numel()) * dtype_size(it->dtype);
            ojson e = ojson::object();
            e["dtype"] = std::string(dtype_name(it->dtype));
            ojson extents = ojson::array();
            for (int a = 0; a < it->dims.rank(); ++a) extents.push_back(static_cast<std::uint64_t>(it->dims[a]));
            e["shape"] = std::move(extents);
            e["data_offsets"] = ojson::array({offset, offset + nbytes});
            header[it->name] = std::move(e);
            offset += nbytes;
        }
        std::string text;
        try {
            text = header.dump();
        } catch (const nlohmann::json::exception& e) {
            fail("safetensors_writer: tensor names and metadata must be valid UTF-8 (", e.what(), ")");
        }
        text.append((8 - text.size() % 8) % 8, ' ');

        head.clear();
        head.reserve(8 + text.size());
        std::uint64_t n = text.size();
        for (int i = 0; i < 8; ++i, n >>= 8) head += static_cast<char>(n & 0xff);
        head += text;
        std::vector<std::string_view> out{head};
        for (const item* it : order)
            out.emplace_back(it->data, static_cast<std::size_t>(static_cast<std::uint64_t>(it->dims.numel()) *
                                                                dtype_size(it->dtype)));
        return out;
    }

    // The whole file as one string.
    std::string serialize() const {
        std::string head, bytes;
        const std::vector<std::string_view> all = pieces(head);
        std::size_t total = 0;
        for (const std::string_view piece : all) total += piece.size();
        bytes.reserve(total);
        for (const std::string_view piece : all) bytes += piece;
        return bytes;
    }

    // Writes the file to `file` atomically (see ouro/io/atomic_file.hpp), straight from the added
    // tensors' memory: no copy of the whole file is made.
    void write(const std::filesystem::path& file) const {
        std::string head;
        write_file_atomically(file, pieces(head));
    }

private:
    struct item {
        std::string name;
        safetensors_dtype dtype;
        shape dims;
        const char* data;
    };
    std::vector<item> items_;
    safetensors_metadata metadata_;
    bool checksum_ = false;
};

// Only the metadata of `file` (cheap: the data is not read), e.g. to compare a checkpoint's model
// spec with the model about to load it.
inline safetensors_metadata read_safetensors_metadata(const std::filesystem::path& file) {
    return safetensors_reader(file, verify_checksum::no).metadata();
}

// Requires every key of `expected` to be in `found` with the same value; the message lists each
// difference with both values. `what` names the source, e.g. the file.
inline void require_metadata(const safetensors_metadata& found, const safetensors_metadata& expected,
                             std::string_view what) {
    detail::mismatch_list problems;
    for (const auto& [key, value] : expected) {
        const auto it = found.find(key);
        if (it == found.end()) problems.add("metadata '", key, "': expected '", value, "', found no such key");
        else if (it->second != value)
            problems.add("metadata '", key, "': expected '", value, "', found '", it->second, "'");
    }
    if (!problems.empty()) problems.raise(ouro::detail::concat(what, ": metadata does not match:"));
}

// Adds one tensor per parameter of `store`, named prefix + parameter name, viewing `buffer`:
// store.size() elements laid out like store.values() (the values themselves, the gradients, an
// optimizer's moments, EMA weights), in host memory. `buffer` must outlive the writer's write().
template <real_scalar T, backend B>
void add_parameter_buffer(safetensors_writer& writer, const parameter_store<T, B>& store, const T* buffer,
                          std::string_view prefix = "") {
    for (const auto& e : store.entries())
        writer.add(std::string(prefix) + e.name, tensor_view<const T>(buffer + e.offset, e.dims));
}

// Reads the tensors named prefix + parameter name into `buffer` (host memory, laid out like
// store.values()).
// Every tensor whose name starts with `prefix` must be a parameter of `store`, each parameter must
// be there with T's dtype and its shape; all of that is checked, and every mismatch named in one
// error, before any element of `buffer` is written. With an empty prefix every tensor of the file
// counts; give each buffer its own prefix ("model.", "adam.m.") when one file holds several.
template <real_scalar T, backend B>
void read_parameter_buffer(safetensors_reader& reader, const parameter_store<T, B>& store, T* buffer,
                           std::string_view prefix = "") {
    constexpr safetensors_dtype want = safetensors_dtype_of<T>;
    detail::mismatch_list problems;
    std::vector<const safetensors_entry*> found(store.entries().size(), nullptr);
    for (std::size_t i = 0; i < store.entries().size(); ++i) {
        const auto& p = store.entries()[i];
        const std::string name = std::string(prefix) + p.name;
        const safetensors_entry* e = reader.find(name);
        if (!e) {
            problems.add("missing tensor '", name, "' (the model's parameter of shape ", p.dims, ")");
            continue;
        }
        if (!(e->dims == p.dims))
            problems.add("tensor '", name, "': expected shape ", p.dims, " (the model's), found ", e->dims,
                         " (the file's)");
        if (e->dtype != want)
            problems.add("tensor '", name, "': expected dtype ", dtype_name(want), ", found ", dtype_name(e->dtype));
        found[i] = e;
    }
    for (const safetensors_entry& e : reader.entries()) {
        if (!std::string_view(e.name).starts_with(prefix)) continue;
        if (!store.find(std::string_view(e.name).substr(prefix.size())).valid())
            problems.add("unexpected tensor '", e.name, "' of shape ", e.dims,
                         " (the model has no parameter of that name)");
    }
    if (!problems.empty()) {
        std::string head = reader.path().string() + ": the tensors do not match the model's parameters";
        if (!prefix.empty()) head += ouro::detail::concat(" (prefix '", prefix, "')");
        problems.raise(head + ":");
    }
    for (std::size_t i = 0; i < found.size(); ++i) reader.read_bytes(*found[i], buffer + store.entries()[i].offset);
}

// Writes the values of `store` (dtype F32 for float, F64 for double; names = parameter names)
// and `metadata` to `file`, atomically.
template <real_scalar T, backend B>
void save_parameters(const std::filesystem::path& file, const parameter_store<T, B>& store,
                     const safetensors_metadata& metadata = {}) {
    const host_readable<T, B> values(store.values(), store.size());
    safetensors_writer writer;
    add_parameter_buffer(writer, store, values.data());
    writer.set_metadata(metadata);
    writer.write(file);
}

// Loads the values of `store` from `file` and returns the file's metadata. Requires the file to
// hold exactly the store's parameters with their shapes and T's dtype, and its metadata to agree
// with every key of `expected_metadata`; all is checked before any value changes, so a file that
// does not fit leaves the store untouched.
template <real_scalar T, backend B>
safetensors_metadata load_parameters(const std::filesystem::path& file, parameter_store<T, B>& store,
                                     const safetensors_metadata& expected_metadata = {}) {
    safetensors_reader reader(file);
    require_metadata(reader.metadata(), expected_metadata, file.string());
    if constexpr (B::host_memory) {
        read_parameter_buffer(reader, store, store.values());
    } else {
        tensor<T> values(shape{store.size()});
        read_parameter_buffer(reader, store, values.data());
        copy_from_host(values.view(), tensor_view<T, B>(store.values(), shape{store.size()}));
    }
    return reader.metadata();
}

}  // namespace ouro::io
