#include "keensight/search.hpp"

namespace keensight::search {

Metric metric_from_name(const std::string& name) {
  if (name == "l2" || name == "sqeuclidean") return Metric::l2;
  if (name == "ip" || name == "inner_product") return Metric::ip;
  if (name == "cosine") return Metric::cosine;
  if (name == "l1" || name == "manhattan" || name == "cityblock") return Metric::l1;
  if (name == "chi2") return Metric::chi2;
  throw ValueError("metric: expected one of 'l2', 'ip', 'cosine', 'l1', 'chi2', got '" + name + "'");
}

const char* metric_name(Metric metric) {
  switch (metric) {
    case Metric::l2: return "l2";
    case Metric::ip: return "ip";
    case Metric::cosine: return "cosine";
    case Metric::l1: return "l1";
    case Metric::chi2: return "chi2";
  }
  return "?";
}

}  // namespace keensight::search
