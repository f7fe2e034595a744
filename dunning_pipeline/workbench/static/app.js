// Progressive: the page works without this; it adds copy-to-clipboard to reminder drafts.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source) return;
  var done = function () { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(source.value).then(done, function () { source.select(); });
  } else {
    source.select();
    try { document.execCommand("copy"); done(); } catch (e) { /* selected: the user copies */ }
  }
});
