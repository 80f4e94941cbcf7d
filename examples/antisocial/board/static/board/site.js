// Counts down the characters left in the post box.
document.addEventListener("DOMContentLoaded", function () {
  var text = document.getElementById("id_text");
  if (!text) {
    return;
  }
  var counter = document.createElement("span");
  text.insertAdjacentElement("afterend", counter);
  function update() {
    counter.textContent = " " + (text.maxLength - text.value.length) + " left";
  }
  text.addEventListener("input", update);
  update();
});
