// Rampart console: the little that needs a script. Every page works without it.
// Copy buttons: <button data-copy="ID"> copies the text of the element ID.
document.addEventListener("click", function (ev) {
  var b = ev.target.closest("button[data-copy]");
  if (!b) return;
  var src = document.getElementById(b.getAttribute("data-copy"));
  if (!src || !navigator.clipboard) return;
  navigator.clipboard.writeText(src.textContent).then(function () {
    b.textContent = "Copied";
  });
});
