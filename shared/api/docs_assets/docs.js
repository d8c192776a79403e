// The API reference (/v1/docs), rendered from this API's OpenAPI document. Plain JavaScript, no
// dependencies, nothing from another origin: every element is built with the DOM API and filled with
// textContent, so nothing in the document becomes markup. The token lives in this closure only.
"use strict";

(function () {
  // Where the API lives: this page is <base>/v1/docs, so the API's paths are <base> + "/v1/...".
  var base = window.location.pathname.replace(/\/v1\/docs\/?$/, "");
  var token = "";
  var spec = null;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else if (name === "className") node.className = attrs[name];
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function status(text, isError) {
    var node = document.getElementById("status");
    node.textContent = text;
    node.className = isError ? "error" : "";
  }

  function call(method, path, body, contentType) {
    var headers = { Authorization: "Bearer " + token };
    if (body !== undefined && body !== null && body !== "") headers["Content-Type"] = contentType || "application/json";
    return fetch(base + path, { method: method, headers: headers, body: body || undefined, credentials: "omit", cache: "no-store" });
  }

  function refName(ref) {
    return ref.split("/").pop();
  }

  // A schema with its $refs replaced by what they name, to a bounded depth (schemas may be recursive).
  function resolve(schema, depth) {
    if (Array.isArray(schema)) return schema.map(function (item) { return resolve(item, depth); });
    if (!schema || typeof schema !== "object") return schema;
    if (schema.$ref) {
      var name = refName(schema.$ref);
      if (depth > 4) return { $ref: schema.$ref };
      return resolve((spec.components.schemas || {})[name] || {}, depth + 1);
    }
    var out = {};
    Object.keys(schema).forEach(function (key) { out[key] = resolve(schema[key], depth); });
    return out;
  }

  function typeOf(schema) {
    if (!schema) return "";
    if (schema.$ref) return refName(schema.$ref);
    if (schema.anyOf) return schema.anyOf.map(typeOf).join(" | ");
    if (schema.enum) return schema.enum.join(" | ");
    if (schema.type === "array") return typeOf(schema.items) + "[]";
    return schema.type + (schema.format ? " (" + schema.format + ")" : "");
  }

  function parametersTable(parameters) {
    if (!parameters.length) return null;
    return el("table", { className: "parameters" }, [
      el("thead", {}, [el("tr", {}, ["Parameter", "In", "Type", "Required", "Description"].map(function (h) { return el("th", { text: h }); }))]),
      el("tbody", {}, parameters.map(function (p) {
        return el("tr", {}, [
          el("td", {}, [el("code", { text: p.name })]),
          el("td", { text: p.in }),
          el("td", { text: typeOf(p.schema) }),
          el("td", { text: p.required ? "yes" : "no" }),
          el("td", { text: p.description || (p.schema && p.schema.description) || "" }),
        ]);
      })),
    ]);
  }

  function responsesTable(responses) {
    return el("table", { className: "responses" }, [
      el("thead", {}, [el("tr", {}, ["Status", "Meaning", "Body"].map(function (h) { return el("th", { text: h }); }))]),
      el("tbody", {}, Object.keys(responses).map(function (code) {
        var content = responses[code].content || {};
        var schema = content["application/json"] && content["application/json"].schema;
        return el("tr", {}, [el("td", { text: code }), el("td", { text: responses[code].description || "" }), el("td", { text: schema ? typeOf(schema) : "" })]);
      })),
    ]);
  }

  function example(schema, depth) {
    schema = schema && schema.$ref ? (spec.components.schemas || {})[refName(schema.$ref)] : schema;
    if (!schema || depth > 5) return null;
    if (schema.default !== undefined) return schema.default;
    if (schema.anyOf) return example(schema.anyOf.filter(function (s) { return s.type !== "null"; })[0], depth + 1);
    if (schema.enum) return schema.enum[0];
    if (schema.type === "object" || schema.properties) {
      var out = {};
      (schema.required || Object.keys(schema.properties || {})).forEach(function (key) {
        out[key] = example((schema.properties || {})[key], depth + 1);
      });
      return out;
    }
    if (schema.type === "array") return [];
    if (schema.type === "integer" || schema.type === "number") return schema.minimum !== undefined ? schema.minimum : 1;
    if (schema.type === "boolean") return false;
    if (schema.type === "string") return schema.format === "time" ? "22:00:00" : "";
    return null;
  }

  function tryIt(method, path, operation) {
    var params = operation.parameters || [];
    var inputs = {};
    var fields = params.map(function (p) {
      var input = el("input", { name: p.name, "data-in": p.in, placeholder: p.required ? "required" : "optional" });
      inputs[p.name] = input;
      return el("label", {}, [p.name + " (" + p.in + ") ", input]);
    });
    var body = operation.requestBody && operation.requestBody.content;
    var mediaType = body ? Object.keys(body)[0] : null;
    var textarea = null;
    if (body) {
      var sample = mediaType === "application/json" ? JSON.stringify(example(body[mediaType].schema, 0), null, 2) : "";
      textarea = el("textarea", { name: "body", "aria-label": "request body (" + mediaType + ")" });
      textarea.value = sample;
      fields.push(el("label", {}, ["Body (" + mediaType + ")", textarea]));
    }
    var output = el("pre", { className: "response", hidden: "hidden" });
    var button = el("button", { type: "submit", text: "Send " + method.toUpperCase() });
    var form = el("form", { className: "try" }, [el("strong", { text: "Try it" })].concat(fields, [button, output]));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var url = path.replace(/\{(\w+)\}/g, function (_, name) { return encodeURIComponent(inputs[name].value); });
      var query = params.filter(function (p) { return p.in === "query" && inputs[p.name].value !== ""; })
        .map(function (p) { return encodeURIComponent(p.name) + "=" + encodeURIComponent(inputs[p.name].value); });
      if (query.length) url += "?" + query.join("&");
      output.hidden = false;
      output.textContent = method.toUpperCase() + " " + url + " …";
      call(method.toUpperCase(), url, textarea ? textarea.value : null, mediaType).then(function (response) {
        return response.text().then(function (text) {
          var shown = text;
          try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (ignored) { /* not JSON */ }
          output.textContent = response.status + " " + response.statusText + "\n\n" + shown;
        });
      }).catch(function (error) {
        output.textContent = "The request failed: " + error;
      });
    });
    return form;
  }

  function operationBlock(method, path, operation) {
    var label = method.toUpperCase() + " " + path;
    var details = el("details", { className: "operation" + (operation.deprecated ? " deprecated" : ""), "data-endpoint": label, "data-tag": (operation.tags || [""])[0] }, [
      el("summary", {}, [
        el("span", { className: "method method-" + method, text: method.toUpperCase() }),
        el("span", { className: "path", text: path }),
        el("span", { className: "summary", text: operation.summary || "" }),
        operation.deprecated ? el("span", { className: "badge", text: "deprecated" }) : null,
      ]),
    ]);
    var inner = el("div", { className: "operation-body" }, [
      operation.description ? el("p", { text: operation.description }) : null,
      parametersTable(operation.parameters || []),
    ]);
    var body = operation.requestBody && operation.requestBody.content;
    if (body) {
      Object.keys(body).forEach(function (mediaType) {
        inner.appendChild(el("p", {}, [el("strong", { text: "Request body " }), el("code", { text: mediaType })]));
        inner.appendChild(el("pre", { text: JSON.stringify(resolve(body[mediaType].schema, 0), null, 2) }));
      });
    }
    inner.appendChild(el("p", {}, [el("strong", { text: "Responses" })]));
    inner.appendChild(responsesTable(operation.responses || {}));
    inner.appendChild(tryIt(method, path, operation));
    details.appendChild(inner);
    return details;
  }

  function render() {
    document.getElementById("description").textContent = (spec.info.title || "") + " " + (spec.info.version || "") + ": " + (spec.info.description || "");
    var operations = document.getElementById("operations");
    operations.textContent = "";
    var byTag = {};
    Object.keys(spec.paths).sort().forEach(function (path) {
      Object.keys(spec.paths[path]).forEach(function (method) {
        var operation = spec.paths[path][method];
        var tag = (operation.tags || ["other"])[0];
        (byTag[tag] = byTag[tag] || []).push(operationBlock(method, path, operation));
      });
    });
    Object.keys(byTag).sort().forEach(function (tag) {
      operations.appendChild(el("section", { className: "tag-group" }, [el("h2", { className: "tag", text: tag })].concat(byTag[tag])));
    });
    var schemas = document.getElementById("schemas");
    schemas.textContent = "";
    Object.keys(spec.components.schemas || {}).sort().forEach(function (name) {
      schemas.appendChild(el("details", { className: "schema", id: "schema-" + name }, [
        el("summary", { text: name }),
        el("pre", { text: JSON.stringify(spec.components.schemas[name], null, 2) }),
      ]));
    });
    document.getElementById("reference").hidden = false;
  }

  function filter(text) {
    var words = text.toLowerCase().split(/\s+/).filter(Boolean);
    document.querySelectorAll("details.operation").forEach(function (block) {
      var haystack = block.textContent.toLowerCase();
      block.hidden = !words.every(function (word) { return haystack.indexOf(word) !== -1; });
    });
    document.querySelectorAll("section.tag-group").forEach(function (group) {
      group.hidden = group.querySelector("details.operation:not([hidden])") === null;
    });
  }

  function load(event) {
    event.preventDefault();
    token = document.getElementById("token").value.trim();
    status("Loading the reference…", false);
    call("GET", "/v1/openapi.json").then(function (response) {
      if (response.status === 401) throw new Error("the API refused this token (401): check it and try again");
      if (!response.ok) throw new Error("the API answered " + response.status);
      return response.json();
    }).then(function (document_) {
      spec = document_;
      render();
      var count = document.querySelectorAll("details.operation").length;
      status("Loaded " + count + " operations from /v1/openapi.json. Try it sends requests with this token.", false);
    }).catch(function (error) {
      status("Could not load the reference: " + error.message, true);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.getElementById("token-form").addEventListener("submit", load);
    document.getElementById("filter").addEventListener("input", function (event) { filter(event.target.value); });
  });
})();
