// Page behaviour without inline script (the Content-Security-Policy allows scripts from /static only):
// a form with data-confirm asks first; a checkbox with data-reveal shows the password field it names; a
// checkbox with data-select-all selects a list's rows.
(function () {
  "use strict";
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
  document.addEventListener("change", (event) => {
    const box = event.target.closest("input[data-reveal]");
    const field = box && document.getElementById(box.dataset.reveal);
    if (field) field.type = box.checked ? "text" : "password";
    // a list's header checkbox ticks every row checkbox of the selection form it names
    const all = event.target.closest("input[data-select-all]");
    if (all) {
      document.querySelectorAll(`input[name="numbers"][form="${all.dataset.selectAll}"]`)
        .forEach((row) => { row.checked = all.checked; });
    }
  });
})();
