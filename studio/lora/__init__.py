"""LoRA through peft (via diffusers/transformers ``add_adapter``) and its canonical state dict."""
