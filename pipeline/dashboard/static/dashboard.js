// Draws each chart from the figure JSON the page carries (no request of its own).
// The scripts are deferred and the charts drawn after the page has painted, one per frame: the
// facts and tables are readable at once, and the browser paints between charts.
(function () {
  var divs = Array.prototype.slice.call(document.querySelectorAll("div.plot[data-figure]"));
  function later(fn) { requestAnimationFrame(function () { setTimeout(fn, 0); }); }
  function next() {
    var div = divs.shift();
    if (!div) {
      document.body.dataset.chartsDrawn = "yes";
      return;
    }
    var fig = JSON.parse(document.getElementById(div.dataset.figure).textContent);
    Plotly.newPlot(div, fig.data, fig.layout, {displaylogo: false, responsive: true}).then(function () { later(next); });
  }
  later(next);
})();
