// The dashboard's only script: every page works without it; it adds self-refreshing sections, live
// audience sizes and template variables, segment previews, template previews and test sends in place, an
// upload progress bar and a drop zone for the import file.
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

// Forms marked data-swap="ID" post in the background; the element with that id in the page the server
// answers (its own render, escaped) replaces the one shown. The template preview sends the editor's
// current content, so unsaved text can be previewed.
function swapOnSubmit(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const editor = document.querySelector('textarea[name="content"]');
    if (form.elements.content && editor) form.elements.content.value = editor.value;
    const target = document.getElementById(form.dataset.swap);
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const response = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
      const html = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = html.getElementById(form.dataset.swap);
      if (fresh && target) target.replaceWith(document.adoptNode(fresh));
    } finally {
      if (button) button.disabled = false;
    }
  });
}

const IMPORT_EXTENSIONS = [".csv", ".json", ".ndjson"];

// The import's drop zone: a dropped file goes into the form's file input and the form is submitted, so it
// takes the very path the picker does (the progress bar, the report). Hidden without this script.
function dropZone(zone) {
  const form = document.getElementById("import-form");
  const input = form.elements.file;
  const status = document.getElementById("drop-status");
  zone.hidden = false;
  const over = (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  };
  zone.addEventListener("dragenter", over);
  zone.addEventListener("dragover", over);
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const files = event.dataTransfer ? event.dataTransfer.files : null;
    if (!files || files.length !== 1) {
      status.textContent = "Drop one file.";
      return;
    }
    const name = files[0].name.toLowerCase();
    if (!IMPORT_EXTENSIONS.some((extension) => name.endsWith(extension))) {
      status.textContent = files[0].name + " is not a CSV, JSON or NDJSON file.";
      return;
    }
    input.files = files;
    status.textContent = "Uploading " + files[0].name + "…";
    form.requestSubmit();
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
      const dropped = document.getElementById("drop-status");
      if (dropped) dropped.textContent = "";
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
  document.querySelectorAll("#drop-zone").forEach(dropZone);
  document.querySelectorAll("form[data-swap]").forEach(swapOnSubmit);
});
