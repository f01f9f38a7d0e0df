#include "broker/routing/topic_match.h"

namespace starling::broker {

bool topic_matches(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic.front() == '$' && !filter.empty() && (filter.front() == '+' || filter.front() == '#'))
    return false;
  size_t f = 0;
  size_t t = 0;
  while (true) {
    size_t f_end = filter.find('/', f);
    std::string_view f_level = filter.substr(f, f_end == std::string_view::npos ? std::string_view::npos : f_end - f);
    if (f_level == "#") return true;  // also matches the parent level
    if (t > topic.size()) return false;  // topic has no more levels
    size_t t_end = topic.find('/', t);
    std::string_view t_level = topic.substr(t, t_end == std::string_view::npos ? std::string_view::npos : t_end - t);
    if (f_level != "+" && f_level != t_level) return false;
    const bool f_last = f_end == std::string_view::npos;
    const bool t_last = t_end == std::string_view::npos;
    if (f_last || t_last) {
      if (f_last && t_last) return true;
      // "a/#" matches "a": the filter's next level is the final '#'.
      return t_last && !f_last && filter.substr(f_end + 1) == "#";
    }
    f = f_end + 1;
    t = t_end + 1;
  }
}

}  // namespace starling::broker
