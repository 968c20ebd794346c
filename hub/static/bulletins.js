// The bulletin form: live word count, the media upload with a progress bar, and a preview of
// what will air before anything is saved. The hub re-checks everything; this only helps.
(() => {
  "use strict";
  const form = document.getElementById("bulletin-form");
  if (!form) {
    return;
  }
  const $ = (id) => document.getElementById(id);
  const kind = $("kind");
  const priority = $("priority");
  const text = $("text");
  const times = $("times");
  const textPart = $("text-part");
  const mediaPart = $("media-part");
  const file = $("file");
  const progress = $("upload-progress");
  const percent = $("upload-percent");
  const status = $("upload-status");
  const media = $("media");
  const mediaMime = $("media-mime");
  const count = $("word-count");
  const warning = $("word-warning");
  const minWords = Number(form.dataset.wordsMin);
  const maxWords = Number(form.dataset.wordsMax);
  const preview = {
    empty: $("preview-empty"),
    text: $("preview-text"),
    audio: $("preview-audio"),
    video: $("preview-video"),
    image: $("preview-image"),
    doc: $("preview-doc"),
  };
  const TEXT_KINDS = ["text", "document"];
  const MEDIA_KINDS = ["document", "audio", "image", "video"];
  const buttons = Array.from(form.querySelectorAll("button[type=submit]"));

  // Python's str.split(): runs of whitespace separate words, as the hub counts them.
  function words(value) {
    const trimmed = value.trim();
    return trimmed ? trimmed.split(/\s+/u).length : 0;
  }

  // What the hub found by decoding the upload (hub/probe.py): length, codec, size, words.
  function facts(body) {
    const found = [];
    if (body.duration_s != null) {
      const whole = Math.round(body.duration_s);
      found.push(Math.floor(whole / 60) + ":" + String(whole % 60).padStart(2, "0"));
    }
    if (body.codec) {
      found.push(body.codec);
    }
    if (body.channels) {
      found.push(body.channels + " ch");
    }
    if (body.sample_rate) {
      found.push(body.sample_rate + " Hz");
    }
    if (body.width && body.height) {
      found.push(body.width + "×" + body.height);
    }
    if (body.words != null) {
      found.push(body.words + " " + (form.dataset.wordsShort || "words"));
    }
    return found;
  }

  function kindOfMime(mime) {
    for (const prefix of ["audio", "image", "video"]) {
      if (mime.startsWith(prefix + "/")) {
        return prefix;
      }
    }
    return mime === "application/pdf" || mime === "text/plain" ? "document" : null;
  }

  function updateWords() {
    const n = words(text.value);
    count.textContent = String(n);
    // The hint says what is needed all along; red only once something is typed and is off.
    warning.hidden = !(kind.value === "text" && n > 0 && (n < minWords || n > maxWords));
  }

  function setSource(element, url) {
    const attribute = element.tagName === "A" ? "href" : "src";
    if (element.getAttribute(attribute) !== url) {
      element.setAttribute(attribute, url);
    }
  }

  function showPreview() {
    for (const element of Object.values(preview)) {
      element.hidden = true;
    }
    let shown = false;
    if (MEDIA_KINDS.includes(kind.value) && media.value) {
      const which = kindOfMime(mediaMime.value);
      const element = preview[which === "document" || which === null ? "doc" : which];
      setSource(element, "/bulletins/media/" + media.value);
      element.hidden = false;
      shown = true;
    }
    if (TEXT_KINDS.includes(kind.value) && text.value.trim()) {
      preview.text.textContent = text.value;
      preview.text.hidden = false;
      shown = true;
    }
    preview.empty.hidden = shown;
  }

  function updateKind() {
    textPart.hidden = !TEXT_KINDS.includes(kind.value);
    mediaPart.hidden = !MEDIA_KINDS.includes(kind.value);
    file.accept = kind.selectedOptions[0].dataset.accept || "";
    updateWords();
    showPreview();
  }

  function updatePriority() {
    times.required = priority.value === "priority";
  }

  function setProgress(value) {
    progress.value = value;
    percent.textContent = value + " %";
  }

  function finish(state, message) {
    mediaPart.dataset.state = state;
    status.textContent = message;
    for (const button of buttons) {
      button.disabled = false;
    }
  }

  function upload(chosen) {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.upload);
    xhr.setRequestHeader("X-CSRF-Token", form.elements.csrf.value);
    xhr.setRequestHeader("Content-Type", chosen.type || "application/octet-stream");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && event.total > 0) {
        // 100 % only once the hub has stored it and answered.
        setProgress(Math.min(99, Math.floor((event.loaded * 100) / event.total)));
      }
    });
    xhr.addEventListener("load", () => {
      const body = xhr.response || {};
      if (xhr.status === 201 && body.sha256) {
        if (body.kind && body.kind !== kind.value) {
          // The chosen kind is the person's decision: never changed behind their back. The
          // file does not fit it; say what the file is and keep nothing.
          const option = Array.from(kind.options).find((o) => o.value === body.kind);
          const found = option ? option.textContent.trim() : body.mime;
          media.value = "";
          mediaMime.value = "";
          file.value = "";
          setProgress(0);
          finish("failed", form.dataset.msgMismatch.replace("{found}", found));
          showPreview();
          return;
        }
        media.value = body.sha256;
        mediaMime.value = body.mime;
        setProgress(100);
        const kib = (body.size / 1024).toFixed(1);
        finish("done", form.dataset.msgDone + " " + [body.mime, kib + " KiB", ...facts(body)].join(", "));
        showPreview();
      } else {
        setProgress(0);
        finish("failed", body.message || form.dataset.msgFailed);
      }
    });
    xhr.addEventListener("error", () => {
      setProgress(0);
      finish("failed", form.dataset.msgFailed);
    });
    for (const button of buttons) {
      button.disabled = true;
    }
    mediaPart.dataset.state = "uploading";
    status.textContent = form.dataset.msgUploading;
    setProgress(0);
    xhr.send(chosen);
  }

  file.addEventListener("change", () => {
    const chosen = file.files && file.files[0];
    if (chosen) {
      upload(chosen);
    }
  });
  kind.addEventListener("change", updateKind);
  priority.addEventListener("change", updatePriority);
  text.addEventListener("input", () => {
    updateWords();
    showPreview();
  });
  updateKind();
  updatePriority();
})();
