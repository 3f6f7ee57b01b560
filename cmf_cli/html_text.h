// Text from the store, made safe to put in an HTML page.
#pragma once

#include <string>
#include <string_view>

namespace cmf::cli {

// TEXT as HTML text or an attribute's value: valid UTF-8 (bytes that are not
// are shown \xNN, as cmf shows them everywhere) with & < > " ' escaped.
std::string HtmlText(std::string_view text);

}  // namespace cmf::cli
