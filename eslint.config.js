// ESLint for the page's scripts (make lint-js): the recommended rules, nothing disabled.
// static/vendor is copied from node_modules by the Makefile, not ours to lint.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["static/vendor/**", "node_modules/**", ".venv/**"] },
  js.configs.recommended,
  {
    files: ["static/js/**/*.js"],
    languageOptions: {
      sourceType: "module",
      // htmx is loaded as a classic script by templates/base.html and used as a global.
      globals: { ...globals.browser, htmx: "readonly" },
    },
  },
  {
    files: ["tests/js/**/*.js", "eslint.config.js"],
    languageOptions: { sourceType: "module", globals: globals.node },
  },
];
