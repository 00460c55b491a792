// The plots of `phalanx report`: one mean-over-seeds curve per table cell, drawn with gnuplot against steps,
// honest gradients and (when the runs simulate time) simulated time; optionally one set of plots per facet
// (report.plot_by), so a study of 28 cells gives readable figures of a few curves each.
#pragma once

#include <string>
#include <vector>

#include "phalanx/core/experiment/report.hpp"

namespace phalanx::core {

struct PlotCurve {
  std::string label;
  std::vector<const RunRecord*> runs;  // the seeds of one cell
};

struct PlotFacet {
  std::string title;   // empty: the only facet
  std::string folder;  // below DIR/plots
  std::vector<PlotCurve> curves;
};

/// Writes DIR/plots[/FOLDER]/*.dat, plots.gp and, when gnuplot is installed, the PNGs. Returns the markdown
/// that shows them (or says why they are missing).
std::string write_plots(const std::string& dir, const std::vector<PlotFacet>& facets, bool with_sim_time);

}  // namespace phalanx::core
