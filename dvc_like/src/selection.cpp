// Parsing of NumPy-style selections: no HDF5 here, so that it is linked into
// cmf itself as well as into the HDF5 module.
#include <charconv>
#include <system_error>

#include "cmf/data/hdf5_slice.h"

namespace cmf::data {
namespace {

Result<std::int64_t> ParseInt(std::string_view text, std::string_view whole) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return Status::InvalidArgument(
        "'" + std::string(whole) + "' is not a selection (want " +
        "start:stop[:step] or an index per dimension)");
  }
  return v;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

Result<std::vector<SliceDim>> ParseSelection(
    std::string_view selection, const std::vector<std::uint64_t>& shape) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = selection.find(',', start);
    parts.push_back(Trim(selection.substr(start, comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (parts.size() != shape.size()) {
    return Status::InvalidArgument(
        "selection '" + std::string(selection) + "' has " +
        std::to_string(parts.size()) + " dimension" +
        (parts.size() == 1 ? "" : "s") + ", the dataset " +
        std::to_string(shape.size()));
  }
  std::vector<SliceDim> dims;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::string_view p = parts[i];
    const std::int64_t size = static_cast<std::int64_t>(shape[i]);
    auto bound = [&](std::int64_t v) { return v < 0 ? v + size : v; };
    auto out_of_range = [&](std::int64_t v) {
      return Status::InvalidArgument("bound " + std::to_string(v) +
                                     " is out of range for " + "dimension " +
                                     std::to_string(i) + " of size " +
                                     std::to_string(size));
    };
    SliceDim d;
    if (p.find(':') == std::string_view::npos) {
      CMF_ASSIGN_OR_RETURN(std::int64_t index, ParseInt(p, selection));
      std::int64_t b = bound(index);
      if (b < 0 || b >= size) return out_of_range(index);
      d = {static_cast<std::uint64_t>(b), 1, 1, true};
    } else {
      std::size_t c1 = p.find(':'), c2 = p.find(':', c1 + 1);
      if (c2 != std::string_view::npos &&
          p.find(':', c2 + 1) != std::string_view::npos) {
        return ParseInt("x", selection).status();
      }
      std::string_view a = Trim(p.substr(0, c1));
      std::string_view b =
          Trim(p.substr(c1 + 1, c2 == p.npos ? p.npos : c2 - c1 - 1));
      std::string_view s =
          c2 == p.npos ? std::string_view() : Trim(p.substr(c2 + 1));
      std::int64_t lo = 0, hi = size, step = 1;
      if (!a.empty()) {
        CMF_ASSIGN_OR_RETURN(std::int64_t v, ParseInt(a, selection));
        lo = bound(v);
        if (lo < 0 || lo > size) return out_of_range(v);
      }
      if (!b.empty()) {
        CMF_ASSIGN_OR_RETURN(std::int64_t v, ParseInt(b, selection));
        hi = bound(v);
        if (hi < 0 || hi > size) return out_of_range(v);
      }
      if (!s.empty()) {
        CMF_ASSIGN_OR_RETURN(step, ParseInt(s, selection));
        if (step <= 0) {
          return Status::InvalidArgument("step " + std::to_string(step) +
                                         " in dimension " + std::to_string(i) +
                                         " is not positive");
        }
      }
      if (lo > hi) {
        return Status::InvalidArgument("'" + std::string(p) +
                                       "' in dimension " + std::to_string(i) +
                                       " is reversed (start after stop)");
      }
      d = {static_cast<std::uint64_t>(lo),
           static_cast<std::uint64_t>(hi > lo ? 1 + (hi - lo - 1) / step : 0),
           static_cast<std::uint64_t>(step), false};
    }
    if (d.count == 0) {
      return Status::InvalidArgument("selection '" + std::string(selection) +
                                     "' selects nothing in dimension " +
                                     std::to_string(i));
    }
    dims.push_back(d);
  }
  return dims;
}

}  // namespace cmf::data
