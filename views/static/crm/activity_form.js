/* Task templates (任务模板) on the activity and follow-up forms
 * (views/templates/crm/activity_form.html).
 *
 * Picking a template in the "Template" select asks the CRM for what it pre-fills
 * (GET <data-template-url><id>: kind, subject, content, next_step, next_step_date) and fills
 * the fields this form has: an empty subject, the note or content, the next step and its
 * date, the type. Text already typed in a field is kept.
 */
(function () {
    "use strict";
    var config = document.getElementById("activity-form-config");
    var picker = document.querySelector("select[name=template]");
    if (!config || !picker) {
        return;
    }

    function field(name) {
        return document.querySelector("[name=" + name + "]");
    }

    function fill(name, value, force) {
        var input = field(name);
        if (!input || value === null || value === undefined || value === "") {
            return;
        }
        if (force || !input.value) {
            input.value = value;
            input.dispatchEvent(new Event("change", {bubbles: true}));
        }
    }

    function apply(template) {
        fill("subject", template.subject, false);
        fill("note", template.content, false);
        fill("content", template.content, false);
        fill("next_step", template.next_step, false);
        fill("next_step_date", template.next_step_date, false);
        fill("kind", template.kind, true);
    }

    function changed() {
        var id = picker.value;
        if (!id || !/^\d+$/.test(id)) {
            return;
        }
        fetch(config.dataset.templateUrl + id, {credentials: "same-origin", headers: {"Accept": "application/json"}})
            .then(function (response) {
                return response.ok ? response.json() : null;
            })
            .then(function (template) {
                if (template) {
                    apply(template);
                }
            });
    }

    if (window.jQuery) {
        window.jQuery(picker).on("change", changed);  // also what a Select2 picker fires
    } else {
        picker.addEventListener("change", changed);
    }
}());
