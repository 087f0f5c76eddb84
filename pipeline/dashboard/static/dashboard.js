// Draws each chart from the figure JSON the page carries (no request of its own).
document.querySelectorAll("div.plot[data-figure]").forEach(function (div) {
  var fig = JSON.parse(document.getElementById(div.dataset.figure).textContent);
  Plotly.newPlot(div, fig.data, fig.layout, {displaylogo: false, responsive: true});
});
document.body.dataset.chartsDrawn = "yes";
