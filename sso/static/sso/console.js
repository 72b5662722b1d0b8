// The console's Single sign-on page: "Copy" buttons next to the values a manager pastes into Entra.
// The value is read from its read-only input (text, never HTML).
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy-from]");
  if (!button) {
    return;
  }
  const input = document.getElementById(button.dataset.copyFrom);
  if (!input) {
    return;
  }
  input.focus();
  input.select();
  let copied = false;
  try {
    await navigator.clipboard.writeText(input.value);
    copied = true;
  } catch {
    copied = document.execCommand("copy");
  }
  button.textContent = copied ? "Copied" : "Press Ctrl+C";
  window.setTimeout(() => {
    button.textContent = "Copy";
  }, 1500);
});
