// Page behaviour without inline script (the Content-Security-Policy allows scripts from /static only):
// a form with data-confirm asks first; a checkbox with data-reveal shows the password field it names.
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
  });
})();
