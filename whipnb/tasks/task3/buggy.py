import math

import torch
import torch.nn as nn

from whipnb.tasks.task3.data import augment, load_images

torch.manual_seed(0)
EPOCHS = 8
BATCH_SIZE = 64

# 600 labelled 16x16 images of four symbols; three augmented copies of each
images, labels = load_images()
images, labels = augment(images, labels, copies=3)
order = torch.randperm(len(images))
split = int(0.8 * len(images))
X_train, y_train = images[order[:split]], labels[order[:split]]
X_val, y_val = images[order[split:]], labels[order[split:]]

model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 4),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=0.003)


def evaluate(X, y):
    """Mean loss and accuracy of the model on (X, y), in batches of 256."""
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(X), 256):
        logits = model(X[start:start + 256])
        loss = criterion(logits, y[start:start + 256])
        total_loss += loss
        correct += (logits.argmax(dim=1) == y[start:start + 256]).sum().item()
    model.train()
    return total_loss / math.ceil(len(X) / 256), correct / len(X)


losses = []
for epoch in range(EPOCHS):
    shuffle = torch.randperm(len(X_train))
    for start in range(0, len(X_train), BATCH_SIZE):
        batch = shuffle[start:start + BATCH_SIZE]
        optimizer.zero_grad()
        loss = criterion(model(X_train[batch]), y_train[batch])
        loss.backward()
        optimizer.step()
    train_loss, train_acc = evaluate(X_train, y_train)
    val_loss, val_acc = evaluate(X_val, y_val)
    losses.append(train_loss)
    print(f"epoch {epoch + 1}: train loss {train_loss:.4f} acc {train_acc:.3f}"
          f" | val loss {val_loss:.4f} acc {val_acc:.3f}")

print(f"LOSSES:{[round(float(value), 4) for value in losses]}")
print(f"VAL_ACC:{val_acc:.4f}")
