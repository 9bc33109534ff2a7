// The API reference page (/docs): reads /api/openapi.json, the document the server builds from its
// own code, and lays it out by group — each operation with its parameters, body and answers, and
// every schema as a tree of fields. Text from the document is set as text, never as markup.

const METHODS = ["get", "post", "put", "delete"];
const MAX_DEPTH = 6;

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
};

// `code` spans of the document's descriptions as <code>; everything else as text.
function prose(text, tag = "p") {
  const node = el(tag, tag === "span" ? { class: "apidoc-desc" } : {});
  String(text || "").split("`").forEach((part, i) => node.append(i % 2 ? el("code", {}, part) : part));
  return node;
}

function resolve(doc, schema) {
  const seen = new Set();
  while (schema && schema.$ref && !seen.has(schema.$ref)) {
    seen.add(schema.$ref);
    schema = schema.$ref.replace(/^#\//, "").split("/").reduce((at, key) => at?.[key.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
  }
  return schema || {};
}

function refName(schema) {
  return schema?.$ref ? schema.$ref.split("/").pop() : null;
}

// A schema's type in a few characters: `string`, `integer | null`, `[ImageView]`, `Object`.
function typeName(doc, schema) {
  if (!schema) return "any";
  const name = refName(schema);
  if (name) return name;
  if (schema.oneOf || schema.anyOf) return (schema.oneOf || schema.anyOf).map((s) => typeName(doc, s)).join(" | ");
  if (schema.allOf) return schema.allOf.map((s) => typeName(doc, s)).join(" & ");
  const types = [].concat(schema.type || []);
  const shown = types.map((t) => (t === "array" ? `[${typeName(doc, schema.items)}]` : t));
  if (schema.format && schema.format !== "int64" && schema.format !== "int32") shown[0] += ` (${schema.format})`;
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  return shown.join(" | ") || (schema.properties ? "object" : "any");
}

// The fields of an object schema (its own and those of what it is composed of).
function fields(doc, schema) {
  schema = resolve(doc, schema);
  let out = [];
  for (const part of schema.allOf || []) out = out.concat(fields(doc, part));
  const required = new Set(schema.required || []);
  for (const [name, field] of Object.entries(schema.properties || {})) {
    out.push({ name, schema: field, required: required.has(name) });
  }
  return out;
}

// The object a field holds, if it is one to unfold (an object, or an array of objects).
function nested(doc, schema) {
  const types = [].concat(schema?.type || []);
  if (types.includes("array")) return nested(doc, schema.items);
  const target = resolve(doc, schema);
  if (schema?.oneOf) return schema.oneOf.map((s) => nested(doc, s)).find(Boolean) || null;
  return target.properties || target.allOf ? target : null;
}

function schemaTree(doc, schema, depth = 0, path = new Set()) {
  const list = el("ul", { class: "apidoc-schema" });
  for (const field of fields(doc, schema)) {
    const description = field.schema.description || resolve(doc, field.schema).description;
    const item = el(
      "li",
      {},
      el("span", { class: "apidoc-field" }, field.name),
      ": ",
      el("span", { class: "apidoc-type" }, typeName(doc, field.schema)),
      field.required ? el("span", { class: "apidoc-req" }, "required") : null,
      description ? prose(description.split("\n").join(" "), "span") : null,
    );
    const inner = nested(doc, field.schema);
    const key = refName(field.schema) || refName(field.schema?.items);
    if (inner && depth < MAX_DEPTH && !(key && path.has(key))) {
      item.append(schemaTree(doc, inner, depth + 1, new Set([...path, key])));
    }
    list.append(item);
  }
  return list.childElementCount ? list : el("p", { class: "apidoc-empty" }, typeName(doc, schema));
}

function content(doc, body) {
  const parts = [];
  for (const [type, media] of Object.entries(body?.content || {})) {
    parts.push(el("div", {}, el("code", {}, type), media.schema ? schemaTree(doc, media.schema) : null));
  }
  return parts;
}

function security(doc, op) {
  const ways = (op.security || []).map((s) => Object.keys(s)[0] || "open");
  const words = { open: "无需登录 / open", session: "登录 / session", key: "API 密钥 / key" };
  return ways.map((w) => words[w] || w).join(" · ");
}

function operation(doc, method, path, op) {
  const body = el("div", { class: "apidoc-body" });
  if (op.description) body.append(prose(op.description));
  body.append(el("p", {}, el("b", {}, "Auth: "), security(doc, op)));
  if (op.parameters?.length) {
    body.append(el("h3", {}, "Parameters"));
    body.append(
      el(
        "div",
        { class: "apidoc-scroll" },
        el(
        "table",
        { class: "apidoc-table" },
        el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "")),
        op.parameters.map((p) =>
          el(
            "tr",
            {},
            el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "apidoc-req" }, "required") : null),
            el("td", {}, p.in),
            el("td", {}, el("span", { class: "apidoc-type" }, typeName(doc, p.schema))),
            el("td", {}, prose(p.description, "span")),
          ),
        ),
        ),
      ),
    );
  }
  if (op.requestBody) {
    body.append(el("h3", {}, "Request body"), ...content(doc, op.requestBody));
  }
  body.append(el("h3", {}, "Responses"));
  for (const [status, answer] of Object.entries(op.responses || {})) {
    const resolved = resolve(doc, answer);
    body.append(
      el(
        "div",
        { "data-testid": "api-response" },
        el("span", { class: "apidoc-status" }, status), " ",
        prose(resolved.description, "span"),
        ...content(doc, resolved),
      ),
    );
  }
  return el(
    "details",
    { class: "apidoc-op", id: op.operationId, "data-testid": "api-operation", "data-method": method, "data-path": path },
    el(
      "summary",
      {},
      el("span", { class: `apidoc-method ${method}` }, method.toUpperCase()),
      el("span", { class: "apidoc-path" }, path),
      prose(op.summary, "span"),
    ),
    body,
  );
}

function render(doc) {
  document.querySelector("[data-testid=api-version]").textContent = doc.info?.version || "";
  document.querySelector("[data-testid=api-description]").replaceChildren(...prose(doc.info?.description).childNodes);
  const schemes = doc.components?.securitySchemes || {};
  document.querySelector("[data-testid=api-auth]").replaceChildren(
    ...Object.entries(schemes).map(([name, s]) => prose(`${name}: ${s.description || ""}`, "span")).flatMap((n) => [n, el("br")]),
  );
  const groups = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const name = op.tags?.[0] || "other";
      if (!groups.has(name)) groups.set(name, { tag: { name }, ops: [] });
      groups.get(name).ops.push(operation(doc, method, path, op));
    }
  }
  const nav = document.querySelector("[data-testid=api-tags]");
  const list = document.getElementById("api-operations");
  nav.replaceChildren();
  list.replaceChildren();
  for (const { tag, ops } of groups.values()) {
    if (!ops.length) continue;
    nav.append(el("a", { href: `#tag-${tag.name}` }, `${tag.name} (${ops.length})`));
    list.append(
      el(
        "section",
        { class: "apidoc-group", id: `tag-${tag.name}`, "data-testid": "api-group" },
        el("h2", {}, tag.name),
        tag.description ? prose(tag.description) : null,
        ops,
      ),
    );
  }
  // Opens the operation the address names (`/docs#list_images`).
  const wanted = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (wanted?.tagName === "DETAILS") {
    wanted.open = true;
    wanted.scrollIntoView();
  }
}

function filter(text) {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  for (const op of document.querySelectorAll("[data-testid=api-operation]")) {
    const haystack = `${op.dataset.method} ${op.dataset.path} ${op.id} ${op.querySelector("summary").textContent}`.toLowerCase();
    op.hidden = !words.every((w) => haystack.includes(w));
  }
  for (const group of document.querySelectorAll("[data-testid=api-group]")) {
    group.hidden = !group.querySelector("[data-testid=api-operation]:not([hidden])");
  }
}

async function main() {
  const list = document.getElementById("api-operations");
  try {
    const res = await fetch("/api/openapi.json");
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    render(await res.json());
  } catch (e) {
    list.textContent = `无法载入 API 文档 / Could not load the API document: ${e.message}`;
    return;
  }
  document.getElementById("api-filter").addEventListener("input", (e) => filter(e.target.value));
}

main();
