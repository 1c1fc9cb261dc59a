/* Rule form: show only the fields of the chosen kind.
 *
 * Each kind-specific part of the form names the kinds it belongs to in `data-kinds`
 * (space-separated); the others get the `hidden` attribute when the kind changes.
 * Hidden fields are still sent, and the server reads and checks every field as it
 * always has; without this script the whole form shows and works.
 */
(function () {
  "use strict";

  const form = document.querySelector("form[data-rule-form]");
  if (!form) return;
  const kind = form.elements.kind;

  function show() {
    for (const part of form.querySelectorAll("[data-kinds]")) {
      part.hidden = !part.dataset.kinds.split(" ").includes(kind.value);
    }
  }

  kind.addEventListener("change", show);
  show();
})();
