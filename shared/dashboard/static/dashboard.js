// The dashboard's only script: every page works without it; it adds self-refreshing sections, live
// audience sizes and template variables, segment previews and an upload progress bar.
// Server data is only ever inserted as text or as HTML the server rendered (and escaped) itself.
"use strict";

function csrfToken() {
  const field = document.querySelector('input[name="csrf_token"]');
  return field ? field.value : "";
}

function postForm(url, fields) {
  const body = new FormData();
  for (const [name, value] of Object.entries(fields)) body.append(name, value);
  body.append("csrf_token", csrfToken());
  return fetch(url, { method: "POST", body, credentials: "same-origin", headers: { "X-CSRF-Token": csrfToken() } });
}

// Sections marked data-refresh="N" are re-read from the same URL every N seconds and swapped in place;
// a refreshed section without the attribute (a campaign that finished) stops the refreshing.
function startRefresh(section) {
  const seconds = Number(section.dataset.refresh);
  if (!seconds) return;
  setTimeout(async () => {
    let next = section;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (response.ok && !response.redirected) {
        const html = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = html.getElementById(section.id);
        if (fresh) {
          section.replaceWith(document.adoptNode(fresh));
          next = fresh;
        }
      }
    } catch (error) {
      // Offline for a moment: keep what is shown and try again next time.
    }
    if (next.dataset.refresh) startRefresh(next);
  }, seconds * 1000);
}

function liveAudience(select) {
  const output = document.getElementById("audience-size");
  const update = async () => {
    output.textContent = "";
    if (!select.value) return;
    output.textContent = "counting…";
    const url = select.dataset.audienceUrl.replace("/0/", "/" + encodeURIComponent(select.value) + "/");
    const response = await fetch(url, { credentials: "same-origin" });
    const data = await response.json();
    output.textContent = response.ok ? data.audience_size + " opted-in users" : "could not count";
  };
  select.addEventListener("change", update);
  update();
}

function liveVariables(textarea) {
  const output = document.getElementById("template-variables");
  let timer = null;
  const update = async () => {
    const response = await postForm(textarea.dataset.variablesUrl, { content: textarea.value });
    const data = await response.json();
    output.textContent = data.error ? data.error : data.variables.join(", ") || "none";
  };
  textarea.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(update, 300);
  });
  if (textarea.value) update();
}

function segmentPreview(button) {
  const form = button.form;
  const result = document.getElementById("preview-result");
  button.addEventListener("click", async () => {
    result.textContent = "counting…";
    const response = await postForm(button.dataset.previewUrl, {
      definition: form.elements.definition.value,
      topic: form.elements.topic.value,
    });
    const data = await response.json();
    result.replaceChildren();
    if (!response.ok) {
      result.textContent = data.error;
      result.className = "field-error";
      return;
    }
    result.className = "preview";
    const size = document.createElement("p");
    size.id = "preview-size";
    size.textContent = data.audience_size + " opted-in users";
    const sample = document.createElement("ul");
    for (const phone of data.sample) {
      const item = document.createElement("li");
      item.textContent = phone;
      sample.append(item);
    }
    result.append(size, sample);
  });
}

function uploadWithProgress(form) {
  const bar = document.getElementById("upload-progress");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total;
    });
    request.addEventListener("load", () => {
      bar.value = 100;
      const html = new DOMParser().parseFromString(request.responseText, "text/html");
      const report = html.getElementById("import-report");
      if (report) document.getElementById("import-report").replaceWith(document.adoptNode(report));
    });
    bar.hidden = false;
    bar.value = 0;
    request.send(new FormData(form));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(startRefresh);
  document.querySelectorAll("select[data-audience-url]").forEach(liveAudience);
  document.querySelectorAll("textarea[data-variables-url]").forEach(liveVariables);
  document.querySelectorAll("#segment-preview").forEach(segmentPreview);
  document.querySelectorAll("#import-form").forEach(uploadWithProgress);
});
