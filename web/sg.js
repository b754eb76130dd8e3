/* scrubgate first-party snippet (placeholder until the real one lands). */
(function (w) {
  "use strict";
  var q = w.ttq;
  w.ttq = q || [];
})(window);
