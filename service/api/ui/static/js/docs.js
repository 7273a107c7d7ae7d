// The interactive API documentation at /docs: Swagger UI, served by this server (no CDN), started
// from this file rather than an inline script so that the Content-Security-Policy can forbid those.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  persistAuthorization: false,
});
