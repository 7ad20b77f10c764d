"""Test double of ComfyUI 0.3.75's ``comfy`` package: ``model_management``, ``model_patcher``, ``utils``."""
