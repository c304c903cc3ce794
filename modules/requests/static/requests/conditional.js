/* Conditional fields of catalog order forms (modules/requests/orderform.py writes the rules from the
   item's JSON Schema into data attributes). Each .order-field may carry
     data-visible-when  = JSON list of conditions; the field shows while any holds (else it hides and
                          its controls are disabled, so they are not posted),
     data-required-when = JSON list of conditions; the field is marked and required while any holds.
   A condition is a list of clauses that all hold: {"field": name, "in": [values]} or
   {"field": name, "filled": true}. The server checks everything again: this only guides the person.
   Without JavaScript every field shows and the server decides. */
(function () {
  "use strict";

  function valueOf(form, name) {
    var controls = form.querySelectorAll('[name="' + name + '"]');
    var values = [];
    controls.forEach(function (control) {
      if (control.disabled) return;
      if (control.type === "checkbox" || control.type === "radio") {
        if (control.checked) values.push(control.type === "checkbox" && control.value === "on" ? "true" : control.value);
      } else if (control.value !== "") {
        values.push(control.value);
      }
    });
    return values;
  }

  function holds(form, condition) {
    return condition.every(function (clause) {
      var values = valueOf(form, clause.field);
      if (clause.filled) return values.length > 0;
      return values.some(function (v) { return clause.in.indexOf(v) !== -1; });
    });
  }

  function anyHolds(form, raw) {
    var conditions;
    try { conditions = JSON.parse(raw); } catch (e) { return true; }
    return conditions.some(function (condition) { return holds(form, condition); });
  }

  function update(form) {
    form.querySelectorAll(".order-field").forEach(function (box) {
      var controls = box.querySelectorAll("input, select, textarea");
      if (box.dataset.visibleWhen) {
        var visible = anyHolds(form, box.dataset.visibleWhen);
        box.hidden = !visible;
        controls.forEach(function (control) { control.disabled = !visible; });
      }
      if (box.dataset.requiredWhen) {
        var required = !box.hidden && anyHolds(form, box.dataset.requiredWhen);
        var mark = box.querySelector(".required-mark");
        if (mark) mark.hidden = !required;
        controls.forEach(function (control) {
          if (control.type !== "checkbox") control.required = required;
        });
      }
    });
  }

  function setUp(form) {
    // Twice: a field shown by the first pass may itself be a condition of another.
    var run = function () { update(form); update(form); };
    form.addEventListener("input", run);
    form.addEventListener("change", run);
    run();
  }

  function start() {
    document.querySelectorAll("form[data-conditional-form]").forEach(setUp);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
