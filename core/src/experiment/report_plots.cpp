#include "phalanx/core/experiment/report_plots.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace phalanx::core {

namespace fs = std::filesystem;

namespace {

// Columns of the .dat files gnuplot reads.
constexpr const char* kDatHeader = "# step gradients sim_time test_accuracy train_loss (mean over seeds)";
enum DatColumn { kStep = 1, kGradients, kSimTime, kAccuracy, kLoss };

void write_curve(const std::string& path, const PlotCurve& curve) {
  std::ofstream dat(path);
  dat << kDatHeader << "\n";
  std::size_t length = SIZE_MAX;
  for (const RunRecord* r : curve.runs) length = std::min(length, r->rows.size());
  for (std::size_t row = 0; row < length; ++row) {
    double sums[5] = {0, 0, 0, 0, 0};
    for (const RunRecord* r : curve.runs) {
      sums[0] += r->column(row, "step");
      sums[1] += r->column(row, "gradients");
      sums[2] += r->column(row, "sim_time");
      sums[3] += 100 * r->column(row, "test_accuracy");
      sums[4] += r->column(row, "train_loss");
    }
    const double n = static_cast<double>(curve.runs.size());
    for (int c = 0; c < 5; ++c) dat << (c ? " " : "") << sums[c] / n;
    dat << "\n";
  }
}

struct Plot {
  const char* file;
  DatColumn x, y;
  const char *xlabel, *ylabel;
};

std::vector<Plot> plots_for(bool with_sim_time) {
  std::vector<Plot> plots{{"accuracy_vs_steps", kStep, kAccuracy, "step", "test accuracy (%)"},
                          {"accuracy_vs_gradients", kGradients, kAccuracy, "honest gradients", "test accuracy (%)"},
                          {"loss_vs_steps", kStep, kLoss, "step", "training loss"},
                          {"loss_vs_gradients", kGradients, kLoss, "honest gradients", "training loss"}};
  if (with_sim_time) {
    plots.push_back({"accuracy_vs_sim_time", kSimTime, kAccuracy, "simulated time", "test accuracy (%)"});
    plots.push_back({"loss_vs_sim_time", kSimTime, kLoss, "simulated time", "training loss"});
  }
  return plots;
}

}  // namespace

std::string write_plots(const std::string& dir, const std::vector<PlotFacet>& facets, bool with_sim_time) {
  const std::vector<Plot> plots = plots_for(with_sim_time);
  const std::string root = dir + "/plots";
  std::ostringstream md;
  fs::create_directories(root);
  std::ofstream script(root + "/plots.gp");
  for (const PlotFacet& facet : facets) {
    const std::string folder = facet.folder.empty() ? root : root + "/" + facet.folder;
    const std::string link = facet.folder.empty() ? "plots/" : "plots/" + facet.folder + "/";
    fs::create_directories(folder);
    for (std::size_t c = 0; c < facet.curves.size(); ++c)
      write_curve(folder + "/curve" + std::to_string(c) + ".dat", facet.curves[c]);
    const std::size_t rows = (facet.curves.size() + 1) / 2;
    script << "set terminal pngcairo size 1000," << 600 + 16 * rows << " noenhanced\nset grid\n"
           << "set key below left Left reverse maxrows " << rows << "\nset format x '%.1s%c'\n"
           << "set title '" << facet.title << "'\n";
    if (!facet.title.empty()) md << "\n### " << facet.title << "\n";
    md << "\n";
    for (const Plot& p : plots) {
      script << "set output '" << folder << "/" << p.file << ".png'\nset xlabel '" << p.xlabel << "'\nset ylabel '"
             << p.ylabel << "'\n" << (p.y == kLoss ? "set logscale y\n" : "unset logscale y\n") << "plot ";
      for (std::size_t c = 0; c < facet.curves.size(); ++c)
        script << (c ? ", " : "") << "'" << folder << "/curve" << c << ".dat' using " << p.x << ":" << p.y
               << " with lines lw 2 dt " << 1 + c / 8 << " title '" << facet.curves[c].label << "'";
      script << "\n";
      md << "![" << p.file << "](" << link << p.file << ".png)\n";
    }
  }
  script.close();
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0)
    return "\nPlots not drawn: gnuplot is not installed (`sudo apt-get install gnuplot-nox`); the data and script "
           "are in plots/.\n";
  if (std::system(("gnuplot '" + root + "/plots.gp' 2> '" + root + "/gnuplot.log'").c_str()) != 0)
    return "\nPlots failed: see plots/gnuplot.log.\n";
  return md.str();
}

}  // namespace phalanx::core
