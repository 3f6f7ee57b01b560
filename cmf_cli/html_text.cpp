#include "html_text.h"

#include "cmf/byte_strings.h"

namespace cmf::cli {

std::string HtmlText(std::string_view text) {
  // EscapeForDisplay quotes a name it escapes; the page shows it as is.
  std::string shown = EscapeForDisplay(text);
  std::string out;
  out.reserve(shown.size());
  for (char c : shown) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace cmf::cli
