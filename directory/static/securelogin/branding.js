// Keeps the sign-in preview in step with the branding form. Values are set as text and attributes
// only (never HTML), like the real sign-in page renders them.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const frame = document.querySelector("[data-brand-preview]");
  if (!frame) {
    return;
  }
  const nameInput = document.getElementById("id_display_name");
  const logoInput = document.getElementById("id_logo_url");
  const colourInput = document.getElementById("id_primary_color");
  const name = frame.querySelector("[data-preview-name]");
  const brand = frame.querySelector("[data-preview-brand]");
  const mark = frame.querySelector("[data-preview-mark]");
  const logo = frame.querySelector("[data-preview-logo]");
  const fallbackName = frame.dataset.tenantName || name.textContent;

  const update = () => {
    const shown = nameInput.value.trim() || fallbackName;
    name.textContent = shown;
    brand.textContent = shown;
    mark.textContent = shown.charAt(0).toUpperCase();
    if (/^#[0-9a-fA-F]{6}$/.test(colourInput.value)) {
      frame.style.setProperty("--sl-preview-color", colourInput.value);
    }
    const url = logoInput.value.trim();
    const usable = url.startsWith("https://");
    logo.hidden = !usable;
    mark.hidden = usable;
    if (usable && logo.getAttribute("src") !== url) {
      logo.setAttribute("src", url);
    }
  };
  for (const input of [nameInput, logoInput, colourInput]) {
    input.addEventListener("input", update);
  }
});
